"""Explicit, replayable randomness.

* :func:`derive_seeds` turns one run seed into independent per-sample seeds (SplitMix64 of the
  sample's global index), so sample i's seed does not depend on batch size or order.
* :func:`randn` draws standard normal noise from per-sample seeds with a counter-based hash, fully
  vectorised in torch on any device: the noise of sample i, stream k is the same whatever batch it
  is in, with no per-sample Python loop and no host round trip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def derive_seeds(seed: int, n: int, offset: int = 0) -> np.ndarray:
    """Per-sample int64 seeds for global indices ``offset .. offset + n - 1`` of run ``seed``."""
    base = _splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    idx = np.arange(offset, offset + n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        out = _splitmix64(idx ^ base)
    return (out >> np.uint64(1)).astype(np.int64)  # non-negative int64


def numpy_rng(seed: int, *stream: int) -> np.random.Generator:
    """A numpy Generator for ``seed`` and an optional stream path (e.g. fold, epoch)."""
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, *stream]))


# ---- counter-based normal noise in torch -------------------------------------------------------
_M32 = 0xFFFFFFFF


def _mul32(x: "torch.Tensor", c: int) -> "torch.Tensor":
    """(x * c) mod 2**32 for 0 <= x < 2**32 in int64 without signed overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _M32


def _hash32(x: "torch.Tensor") -> "torch.Tensor":
    """A 32-bit avalanche hash (lowbias32) on int64 tensors holding uint32 values."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def randn(seeds: Any, shape: tuple[int, ...], stream: int = 0, device: Any = None,
          dtype: Any = None) -> "torch.Tensor":
    """Standard normal noise ``[N, *shape]``: row i depends only on (seeds[i], stream).

    ``stream`` separates draws of the same sample (e.g. the initial noise and each sampler step).
    """
    import torch

    seeds_t = torch.as_tensor(np.asarray(seeds, dtype=np.int64) if not torch.is_tensor(seeds) else seeds,
                              dtype=torch.int64, device=device)
    count = 1
    for s in shape:
        count *= int(s)
    n_pairs = (count + 1) // 2
    lo = seeds_t & _M32
    hi = (seeds_t >> 32) & _M32
    key = _hash32(lo ^ _hash32(hi ^ _hash32(torch.full_like(lo, stream & _M32))))[:, None]
    ctr = torch.arange(2 * n_pairs, device=seeds_t.device, dtype=torch.int64)[None, :]
    bits = _hash32(_hash32(ctr ^ key) ^ (key >> 7))
    u = ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))
    u1, u2 = u[:, 0::2], u[:, 1::2]
    r = torch.sqrt(-2.0 * torch.log(u1))
    theta = 2.0 * np.pi * u2
    z = torch.cat([r * torch.cos(theta), r * torch.sin(theta)], dim=1)[:, :count]
    out = z.reshape(len(seeds_t), *shape)
    return out.to(dtype or torch.float32)
