"""Explicit, replayable randomness.

* :func:`derive_seeds` turns one run seed into independent per-sample seeds (SplitMix64 of the
  sample's global index), so sample i's seed does not depend on batch size or order.
* :func:`randn` draws standard normal noise from per-sample seeds with a counter-based hash, fully
  vectorised in torch on any device: the noise of sample i, stream k is the same whatever batch it
  is in, with no per-sample Python loop and no host round trip.
* :class:`Stream` names every seed-stream id of augframe and its first-party plugins, so two draws
  cannot silently share noise.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@enum.unique  # a reused id fails at import: two draws would otherwise share their noise
class Stream(enum.IntEnum):
    """Every seed-stream id: a path entry of :func:`numpy_rng` or a salt mixed into a seed.

    The values are frozen (parity fixtures and seeded tests replay them); a new draw adds a member
    with a fresh value. Names are ``<module>_<draw>``. (The per-sample noise streams of
    :func:`randn` count their own small integers per model and are not listed here.)
    """

    DATASET_SELECT = 0xA5A5  # augmented dataset: which items an epoch draws
    DATASET_PICK = 0x5EED  # augmented dataset: which synthetic sample fills a position (xor salt)
    TRAINING_ORDER = 0x5A3  # training: per-epoch shuffle
    TRAINING_BALANCED = 0xBA1  # training: class-balanced turns
    LIVE_POSITIONS = 0x11E  # live generation: which batch positions are synthetic
    TESTING_ECG = 0xECC  # augframe.testing: the synthetic test ECGs
    RETIME_SIGNALS = 0x7B  # retime: signals whose R peaks feed the rhythm bank
    RETIME_WINDOWS = 0x7C  # retime: cached windows whose R peaks feed the rhythm bank
    PIPELINE_SOURCE_ROUNDS = 0x0D  # pipeline: order of source ECGs per target
    PIPELINE_MASK = 0x6A9  # pipeline: completion masks
    PIPELINE_EVALUATOR = 0xE7A1  # pipeline: each evaluator's seed
    DIFFSTYLETS_MONITOR = 0x5EEDF00D  # diffstylets: faithful stage-2 monitor (xor salt)
    DIFFSTYLETS_BATCH = 0xBA7C  # diffstylets: per-step batch seed (xor salt)
    DIFFSTYLETS_STYLE_BANK = 0x57  # diffstylets: windows of the style bank
    DIFFSTYLETS_NORMALISER = 0xA0  # diffstylets: windows the normaliser is fitted on
    SSSD_RMS = 0x55D  # sssd: windows of the RMS estimate
    DIFFECG_BATCH = 0xD1FF  # diffecg: training batches
    DIFFECG_NOISE = 7919  # diffecg: training noise (added to the seed)
    AFIB_CALIBRATION = 0x7A1  # afib rhythm evaluator: calibration windows
    AFIB_FAITHFUL = 0x3A  # afib protocol: faithful plan per fold
    AFIB_CORRECTED = 0x3C  # afib protocol: corrected plan per fold
    AFIB_NOISE_CONTROL = 0xB0  # afib protocol: noise control per fold
    AFIB_CLASSICAL = 0xC1A5  # afib: classical augmentation
    AFIB_FIDELITY = 0xE3B  # afib fidelity: subsampling
    AFIB_BOOTSTRAP = 0xB007  # afib tost: paired bootstrap
    AFIB_MMD = 0x3D  # afib similarity: MMD permutations
    AFIB_CURVE_GROUPS = 0xC5  # afib curve: minority groups order
    AFIB_CURVE_PICK = 0x5E  # afib curve: synthetic ECGs added per cell
    AFIB_CURVE_ORDER = 0xD0  # afib curve: minority order per cell
    TSTR_MATCHED_REAL = 0x7D5  # afib tstr: real training draw matched to the synthetic one


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
