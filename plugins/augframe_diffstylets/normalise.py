"""The affine map between the data's units and the scale the diffusion model works at.

``x_model = (x - offset) / scale``. Two fits, one per mode:

* ``faithful``: the reference's one global min-max over the training windows, mapped to [-1.5, 1.5]
  (it leaves the data std near 0.06, so SDEdit strength 0.6 wipes out most of the source);
* ``improved``: global mean and standard deviation (unit variance), so the noise level means what the
  strength says; the x0 clamp is set from the largest normalised training value.

Statistics are taken from at most ``max_windows`` windows (seeded choice), read one chunk at a time,
so a memory-mapped dataset is never loaded whole.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from augframe.errors import DataError
from augframe.seeding import Stream, numpy_rng


@attrs.frozen
class Normaliser:
    offset: float = 0.0
    scale: float = 1.0
    clamp: float = 3.0

    def forward(self, x: Any) -> Any:
        return (x - self.offset) / self.scale

    def inverse(self, x: Any) -> Any:
        return x * self.scale + self.offset

    def to_dict(self) -> dict[str, float]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normaliser:
        return cls(**{k: float(v) for k, v in d.items()})


def _chunks(data: Any, idx: np.ndarray, size: int = 256):
    for s in range(0, len(idx), size):
        yield np.stack([np.asarray(data[int(i)][0], dtype=np.float64) for i in idx[s:s + size]])


def fit_normaliser(data: Any, mode: str, seed: int = 0, max_windows: int = 4096) -> Normaliser:
    """Fit the mode's normaliser on a WindowDataset (see module docstring)."""
    n = len(data)
    if n == 0:
        raise DataError("cannot fit the DiffStyleTS normaliser on an empty training set")
    idx = np.sort(numpy_rng(seed, Stream.DIFFSTYLETS_NORMALISER).permutation(n)[:max_windows]) if n > max_windows else np.arange(n)
    lo, hi, total, total_sq, count = np.inf, -np.inf, 0.0, 0.0, 0
    for x in _chunks(data, idx):
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
        total += float(x.sum())
        total_sq += float((x * x).sum())
        count += x.size
    if not np.isfinite(lo) or hi - lo <= 0:
        raise DataError("training windows are constant (or not finite); the normaliser cannot be fitted")
    if mode == "faithful":
        scale = (hi - lo) / 3.0
        return Normaliser(offset=lo + 1.5 * scale, scale=scale, clamp=3.0)
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean * mean, 1e-12)))
    peak = max(abs(lo - mean), abs(hi - mean)) / std
    return Normaliser(offset=mean, scale=std, clamp=float(np.ceil(1.25 * peak)))
