"""Task masks (True where the signal is known): the only thing that tells the model its task.

* generation: nothing known;
* imputation: random gaps, one long gap, or whole leads missing;
* forecasting: the last ``horizon`` samples of the window unknown.

The public builders check their arguments and raise named errors; :func:`training_masks` draws a
random task per sample from a seeded numpy generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from augframe.errors import ValidationError

TASKS = ("generate", "random_gaps", "long_gap", "forecast", "missing_leads")


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) != 3 or min(shape) < 1:
        raise ValidationError(f"mask shape {tuple(shape)} must be [N, leads, samples] with positive sizes")
    return int(shape[0]), int(shape[1]), int(shape[2])


def _check_fraction(fraction: float) -> float:
    if not 0.0 < float(fraction) < 1.0:
        raise ValidationError(f"gap fraction={fraction} must lie strictly between 0 and 1")
    return float(fraction)


def forecast_mask(shape: Sequence[int], horizon: int) -> np.ndarray:
    """Known everywhere except the last ``horizon`` samples of every lead."""
    n, leads, s = _check_shape(shape)
    if int(horizon) >= s:
        raise ValidationError(
            f"forecast horizon {horizon} samples is not shorter than the window ({s} samples); "
            "shorten the horizon or use a longer window (something must be known to forecast from)"
        )
    if int(horizon) < 1:
        raise ValidationError(f"forecast horizon {horizon} must be at least 1 sample")
    mask = np.ones((n, leads, s), dtype=bool)
    mask[..., s - int(horizon):] = False
    return mask


def long_gap_mask(shape: Sequence[int], fraction: float, seed: int) -> np.ndarray:
    """One contiguous gap of ``round(fraction * samples)`` per sample, at a seeded random start."""
    n, leads, s = _check_shape(shape)
    width = max(1, int(round(_check_fraction(fraction) * s)))
    rng = np.random.default_rng(seed)
    start = rng.integers(0, s - width + 1, size=n)
    pos = np.arange(s)[None, :]
    gap = (pos >= start[:, None]) & (pos < start[:, None] + width)
    return np.repeat(~gap[:, None, :], leads, axis=1)


def random_gaps_mask(shape: Sequence[int], fraction: float, seed: int, chunk: int = 25) -> np.ndarray:
    """Missing chunks of ``chunk`` samples drawn without replacement until ``fraction`` is missing."""
    n, leads, s = _check_shape(shape)
    _check_fraction(fraction)
    if chunk < 1:
        raise ValidationError(f"random gap chunk={chunk} must be at least 1 sample")
    n_chunks = -(-s // chunk)
    k = max(1, int(round(fraction * n_chunks)))
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((n, n_chunks)), axis=1)[:, :k]
    missing_chunks = np.zeros((n, n_chunks), dtype=bool)
    np.put_along_axis(missing_chunks, order, True, axis=1)
    missing = np.repeat(missing_chunks, chunk, axis=1)[:, :s]
    return np.repeat(~missing[:, None, :], leads, axis=1)


def missing_leads_mask(shape: Sequence[int], missing: Sequence[int]) -> np.ndarray:
    """Leads at indices ``missing`` unknown for every sample; at least one lead must stay known."""
    n, leads, s = _check_shape(shape)
    missing = sorted({int(i) for i in missing})
    if not missing or missing[0] < 0 or missing[-1] >= leads:
        raise ValidationError(f"missing leads {missing} must be indices in 0..{leads - 1}")
    if len(missing) == leads:
        raise ValidationError("every lead is marked missing; that is generation, use a 'sample' request")
    mask = np.ones((n, leads, s), dtype=bool)
    mask[:, missing, :] = False
    return mask


def training_masks(shape: Sequence[int], rng: np.random.Generator,
                   probs: dict[str, float] | None = None) -> np.ndarray:
    """A random task mask per sample (vectorised): the mixture the single model is trained on."""
    n, leads, s = _check_shape(shape)
    probs = dict(probs or default_task_probs(leads))
    names = [t for t in TASKS if probs.get(t, 0) > 0 and (t != "missing_leads" or leads > 1)]
    p = np.array([probs[t] for t in names], dtype=np.float64)
    task = rng.choice(len(names), size=n, p=p / p.sum())
    pos = np.arange(s)[None, :]
    frac = rng.uniform(0.05, 0.6, size=n)
    mask = np.ones((n, leads, s), dtype=bool)
    # one long gap
    width = np.maximum(1, (frac * s).astype(np.int64))
    start = (rng.random(n) * (s - width + 1)).astype(np.int64)
    long_gap = (pos >= start[:, None]) & (pos < (start + width)[:, None])
    # random gaps: chunks of 5..100 samples, each missing with probability frac
    chunk = rng.integers(5, 101, size=n)
    chunk_id = pos // chunk[:, None]
    coin = rng.random((n, s // 5 + 1)) < frac[:, None]
    random_gaps = np.take_along_axis(coin, chunk_id, axis=1)
    # forecasting: the last 10..60 % of the window
    horizon = np.maximum(1, (rng.uniform(0.1, 0.6, size=n) * s).astype(np.int64))
    future = pos >= (s - horizon)[:, None]
    per_task = {
        "generate": np.ones((n, s), dtype=bool),
        "random_gaps": random_gaps,
        "long_gap": long_gap,
        "forecast": future,
    }
    for k, name in enumerate(names):
        rows = task == k
        if not rows.any():
            continue
        if name == "missing_leads":
            drop = rng.random((int(rows.sum()), leads)) < 0.5
            drop[np.arange(len(drop)), rng.integers(0, leads, size=len(drop))] = False  # keep one lead
            mask[rows] = ~np.repeat(drop[:, :, None], s, axis=2)
        else:
            mask[rows] = ~np.repeat(per_task[name][rows][:, None, :], leads, axis=1)
    return mask


def default_task_probs(leads: int) -> dict[str, float]:
    probs = {"generate": 0.2, "random_gaps": 0.2, "long_gap": 0.25, "forecast": 0.25, "missing_leads": 0.1}
    if leads == 1:
        probs["missing_leads"] = 0.0
    return probs
