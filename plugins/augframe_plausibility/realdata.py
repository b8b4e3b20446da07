"""Real CinC 2017 windows and implausible counterparts, for measuring the validator.

:func:`cinc_windows` uses the data layer's ``augframe.data.cinc2017_windows`` (reference cleaning,
quality gate, mV with ``normalise=None``). :func:`load_cinc_windows` is the plain reading used to
cross-check it and when the data layer is absent: WFDB files (int16 ADC at 300 Hz, gain 1000/mV ->
mV), 300 -> 250 Hz with ``resample_poly(5, 6)``, non-overlapping 10 s windows, no cleaning.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from augframe.errors import DataError, ValidationError
from augframe.signals import ECGBatch

CLASS_NAMES = ("N", "A")


def _reference(root: Path) -> list[tuple[str, str]]:
    path = root / "REFERENCE.csv"
    if not path.exists():
        raise DataError(f"{path} is missing: point root at a CinC 2017 training folder (REFERENCE.csv + A*.mat/.hea)")
    with path.open(newline="") as fh:
        return [(r[0].strip(), r[1].strip()) for r in csv.reader(fh) if len(r) >= 2]


def cinc_windows(root: str | Path, limit_per_class: int | None = None, normalise: str | None = None,
                 seed: int = 0) -> ECGBatch:
    """CinC 2017 N and A windows through the data layer if it is there, else :func:`load_cinc_windows`."""
    try:
        from augframe.data import cinc2017_windows
    except (ImportError, AttributeError) as exc:
        if normalise is not None:
            raise DataError("the data layer (augframe.data.cinc2017_windows) is needed for normalised windows") from exc
        return load_cinc_windows(root, max_records=limit_per_class)
    return cinc2017_windows(root, classes=CLASS_NAMES, limit_per_class=limit_per_class, normalise=normalise, seed=seed)


def load_cinc_windows(
    root: str | Path, classes: tuple[str, ...] = CLASS_NAMES, max_records: int | None = None,
    window_s: float = 10.0, fs: float = 250.0, per_record: int | None = None,
) -> ECGBatch:
    """Non-overlapping ``window_s`` windows of the CinC 2017 records of ``classes`` (mV, ``fs`` Hz).

    ``max_records`` takes the first records of each class (in REFERENCE order); ``per_record``
    caps the windows taken from one record (all by default).
    """
    import wfdb

    root = Path(root)
    refs = _reference(root)
    length = int(round(window_s * fs))
    sigs, labels, ids = [], [], []
    for ci, cls in enumerate(classes):
        recs = [r for r, lab in refs if lab == cls][:max_records]
        for rec in recs:
            raw, fields = wfdb.rdsamp(str(root / rec))
            x = raw[:, 0].astype(np.float64)
            src_fs = float(fields["fs"])
            if src_fs != fs:
                g = np.gcd(int(round(fs)), int(round(src_fs)))
                x = resample_poly(x, int(round(fs)) // g, int(round(src_fs)) // g)
            k = len(x) // length
            if per_record is not None:
                k = min(k, per_record)
            for w in range(k):
                sigs.append(x[w * length:(w + 1) * length])
                labels.append(ci)
                ids.append(f"{rec}:{w}")
    if not sigs:
        raise DataError(f"no {window_s:g} s windows of classes {classes} under {root}")
    return ECGBatch(np.stack(sigs).astype(np.float32)[:, None, :], fs, ("I",), labels=labels,
                    class_names=classes, ids=ids, units="mV")


# --- implausible inputs ---------------------------------------------------------------------------
def implausible(kind: str, x: np.ndarray, fs: float, rng: np.random.Generator) -> np.ndarray:
    """An implausible version of real windows ``x`` ``[N, L]`` (mV), one of :data:`KINDS`."""
    n, length = x.shape
    std = x.std(axis=1, keepdims=True)
    if kind == "flat":
        return np.repeat(rng.normal(0, 0.2, (n, 1)), length, axis=1)
    if kind == "white_noise":
        return rng.standard_normal((n, length)) * std
    if kind == "random_walk":
        w = np.cumsum(rng.standard_normal((n, length)), axis=1)
        w -= w.mean(axis=1, keepdims=True)
        return w / w.std(axis=1, keepdims=True) * std
    if kind == "clipped":
        med = np.median(x, axis=1, keepdims=True)
        hi = med + 0.4 * (x.max(axis=1, keepdims=True) - med)
        lo = med + 0.4 * (x.min(axis=1, keepdims=True) - med)
        return np.clip(x, lo, hi)
    if kind == "spliced":
        other = x[rng.permutation(n)]
        cut = rng.integers(int(0.3 * length), int(0.7 * length), size=n)
        return np.where(np.arange(length)[None, :] < cut[:, None], x, other)
    if kind == "amplitude_x20":
        return 20.0 * x
    if kind == "inverted":
        return -x
    if kind == "time_reversed":
        return x[:, ::-1].copy()
    raise ValidationError(f"unknown implausible kind {kind!r}; use one of {KINDS}")


KINDS = ("flat", "white_noise", "random_walk", "clipped", "spliced", "amplitude_x20", "inverted", "time_reversed")
