"""Preprocessing shared by every generator and evaluator: leads, resampling, cleaning, windows, quality.

The steps, in order, for one record:

1. **lead selection** by name (``"first"`` takes the first lead a record has);
2. **polyphase resampling** to ``fs`` (250 Hz) with :func:`scipy.signal.resample_poly`;
3. **cleaning**, zero-phase: ``"reference"`` = the DiffStyleTS pipeline's neurokit2 ``ecg_clean``
   (5th-order Butterworth high-pass at 0.5 Hz through ``sosfiltfilt``, then a moving average of
   ``fs/powerline`` samples run forwards and backwards, i.e. neurokit's "powerline" filter);
   ``"bandpass"`` = 4th-order Butterworth 0.5-40 Hz through ``sosfiltfilt``; ``"none"``;
4. **windowing**: ``window_s`` windows every ``stride_s`` (non-overlapping by default), several per
   record; records shorter than a window are dropped or edge-padded (``short_records``);
5. **quality gate** per window (the reference's multiplicative score: flat line, low variance,
   saturation, tiny range, NaN), windows below ``quality_threshold`` are rejected.

Cleaning runs on the whole record before windowing, so windows have no filter edge effects
(the reference cleaned each 10 s window on its own). Normalisation is separate
(:mod:`augframe.data.normalise`) because it must be fitted on the training split only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Any

import attrs
import numpy as np
from scipy import signal as sps

from augframe.data.problems import Problem
from augframe.errors import ValidationError, require_choice, suggest
from augframe.protocols import Record
from augframe.signals import STANDARD_LEADS, canonical_lead

CLEANING = ("reference", "bandpass", "none")
SHORT_RECORDS = ("drop", "pad")
QUALITY = ("reference", "none")


def _as_leads(value: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    out = tuple(str(v) for v in value)
    if not out:
        raise ValidationError("preprocess.leads is empty; name at least one lead (e.g. 'II') or 'first'")
    if "first" in out:
        if len(out) != 1:
            raise ValidationError("preprocess.leads: 'first' cannot be combined with lead names")
        return out
    return tuple(canonical_lead(v) for v in out)


def _opt_float_tuple(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = (value,)
    return tuple(float(v) for v in value)


def _positive(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and not value > 0:
        raise ValidationError(f"preprocess.{attribute.name}={value} must be positive")


@attrs.frozen
class PreprocessConfig:
    """How records become windows; declared in a recipe's ``[data.preprocess]`` table.

    Attributes:
        leads: lead names to keep, in order (``"II"`` by default), or ``"first"`` for the first lead
            a record has (single-lead devices such as CinC 2017, whose lead is reported as ``"I"``).
        fs: output sampling rate in Hz.
        cleaning: ``"reference"`` (0.5 Hz high-pass + powerline), ``"bandpass"`` or ``"none"``.
        powerline: mains frequency for the reference powerline filter (50 or 60 Hz).
        bandpass: (low, high) cut-offs in Hz of the band-pass cleaning.
        window_s: window length in seconds.
        stride_s: step between window starts (None = window_s, no overlap).
        max_windows_per_record: cap on windows per record (None = all); the first ones are kept.
        short_records: ``"drop"`` records shorter than a window, or ``"pad"`` them at the edge
            (the reference's choice) when they cover at least ``min_pad_fraction`` of a window.
        min_pad_fraction: shortest record, as a fraction of a window, that ``"pad"`` accepts.
        quality: ``"reference"`` gate or ``"none"``.
        quality_threshold: windows scoring below this are rejected (reference: 0.5).
        saturation_mv: |amplitude| above which a sample counts as saturated (reference: 5 mV).
        allowed_fs: native sampling rates accepted (None = any); others are reported.
    """

    leads: tuple[str, ...] = attrs.field(default=("II",), converter=_as_leads)
    fs: float = attrs.field(default=250.0, converter=float, validator=_positive)
    cleaning: str = attrs.field(default="reference")
    powerline: float = attrs.field(default=50.0, converter=float, validator=_positive)
    bandpass: tuple[float, float] = attrs.field(default=(0.5, 40.0), converter=lambda v: tuple(float(x) for x in v))
    window_s: float = attrs.field(default=10.0, converter=float, validator=_positive)
    stride_s: float | None = attrs.field(default=None, converter=attrs.converters.optional(float), validator=_positive)
    max_windows_per_record: int | None = attrs.field(default=None, converter=attrs.converters.optional(int),
                                                     validator=_positive)
    short_records: str = "drop"
    min_pad_fraction: float = attrs.field(default=0.8, converter=float)
    quality: str = "reference"
    quality_threshold: float = attrs.field(default=0.5, converter=float)
    saturation_mv: float = attrs.field(default=5.0, converter=float, validator=_positive)
    allowed_fs: tuple[float, ...] | None = attrs.field(default=None, converter=_opt_float_tuple)

    def __attrs_post_init__(self) -> None:
        require_choice("preprocess.cleaning", self.cleaning, CLEANING)
        require_choice("preprocess.short_records", self.short_records, SHORT_RECORDS)
        require_choice("preprocess.quality", self.quality, QUALITY)
        lo, hi = self.bandpass if len(self.bandpass) == 2 else (None, None)
        if lo is None or not 0 < lo < hi < self.fs / 2:
            raise ValidationError(
                f"preprocess.bandpass={list(self.bandpass)} must be [low, high] with 0 < low < high < fs/2 "
                f"({self.fs / 2:g} Hz)")
        if not 0 < self.min_pad_fraction <= 1:
            raise ValidationError(f"preprocess.min_pad_fraction={self.min_pad_fraction} must lie in (0, 1]")
        if self.window_samples < 8:
            raise ValidationError(f"preprocess.window_s={self.window_s} gives fewer than 8 samples at {self.fs:g} Hz")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.fs))

    @property
    def stride_samples(self) -> int:
        return max(1, int(round((self.stride_s or self.window_s) * self.fs)))

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in attrs.asdict(self).items()}

    @classmethod
    def from_dict(cls, table: Mapping[str, Any] | None) -> PreprocessConfig:
        """Build from a recipe table; an unknown key raises naming it (with the closest valid key)."""
        table = dict(table or {})
        valid = [f.name for f in attrs.fields(cls)]
        for key in table:
            if key not in valid:
                raise ValidationError(f"preprocess has no setting {key!r}{suggest(key, valid)}")
        return cls(**table)


# --------------------------------------------------------------------------------------------
# Steps (each works on float arrays [leads, samples])
# --------------------------------------------------------------------------------------------
def select_leads(record: Record, leads: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Rows of ``record.signal`` for ``leads`` (or the first lead); a missing lead raises KeyError."""
    if tuple(leads) == ("first",):
        return record.signal[:1], (record.leads[0],)
    have = {name.lower(): i for i, name in enumerate(record.leads)}
    missing = [n for n in leads if n.lower() not in have]
    if missing:
        raise KeyError(f"lacks lead(s) {missing}; it has {list(record.leads)}")
    return record.signal[[have[n.lower()] for n in leads]], tuple(leads)


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis (exact rational ratio up to 1/1000)."""
    if fs_in == fs_out:
        return np.asarray(x, dtype=np.float64)
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    return sps.resample_poly(np.asarray(x, dtype=np.float64), ratio.numerator, ratio.denominator, axis=-1)


@lru_cache(maxsize=32)
def _butter(order: int, cut: tuple[float, ...], btype: str, fs: float) -> np.ndarray:
    return sps.butter(order, cut if len(cut) > 1 else cut[0], btype=btype, fs=fs, output="sos")


def clean(x: np.ndarray, fs: float, config: PreprocessConfig) -> np.ndarray:
    """Zero-phase cleaning of [leads, samples] at ``fs`` as ``config.cleaning`` says."""
    if config.cleaning == "none":
        return x
    if config.cleaning == "bandpass":
        return sps.sosfiltfilt(_butter(4, tuple(config.bandpass), "bandpass", fs), x, axis=-1)
    # reference: neurokit2 ecg_clean(method="neurokit") = high-pass 0.5 Hz (order 5) + powerline
    y = sps.sosfiltfilt(_butter(5, (0.5,), "highpass", fs), x, axis=-1)
    width = int(fs / config.powerline) if fs >= 100 else 2
    b = np.ones(width)
    return sps.filtfilt(b, [float(width)], y, axis=-1, method="pad")


def window_starts(n_samples: int, config: PreprocessConfig) -> np.ndarray:
    """Start indices of the full windows that fit in ``n_samples`` (capped per record)."""
    w, s = config.window_samples, config.stride_samples
    if n_samples < w:
        return np.zeros(0, dtype=np.int64)
    starts = np.arange(0, n_samples - w + 1, s, dtype=np.int64)
    if config.max_windows_per_record is not None:
        starts = starts[: config.max_windows_per_record]
    return starts


def quality_scores(windows: np.ndarray, saturation_mv: float = 5.0) -> np.ndarray:
    """The reference's multiplicative quality score per window (worst lead), in [0, 1].

    Start at 1 and multiply: flat-line ratio (|diff| < 1e-8) > 0.5 x0.3, > 0.3 x0.6; std < 0.01
    x0.2, < 0.03 x0.7; fraction of |x| > ``saturation_mv`` above 0.1 x0.3, above 0.01 x0.8; range
    < 0.05 x0.3; any NaN/Inf -> 0. ``windows`` is [N, leads, samples] in mV.
    """
    w = np.asarray(windows, dtype=np.float64)
    bad = ~np.isfinite(w).all(axis=-1)
    w = np.where(np.isfinite(w), w, 0.0)
    flat = (np.abs(np.diff(w, axis=-1)) < 1e-8).mean(axis=-1)
    std = w.std(axis=-1)
    sat = (np.abs(w) > saturation_mv).mean(axis=-1)
    rng = w.max(axis=-1) - w.min(axis=-1)
    score = np.ones(w.shape[:2])
    score *= np.where(flat > 0.5, 0.3, np.where(flat > 0.3, 0.6, 1.0))
    score *= np.where(std < 0.01, 0.2, np.where(std < 0.03, 0.7, 1.0))
    score *= np.where(sat > 0.1, 0.3, np.where(sat > 0.01, 0.8, 1.0))
    score *= np.where(rng < 0.05, 0.3, 1.0)
    score[bad] = 0.0
    return score.min(axis=1) if w.shape[1] else np.zeros(len(w))


@attrs.frozen(eq=False)
class RecordWindows:
    """The kept windows of one record: float32 [W, leads, samples] in mV, their starts and scores.

    ``record`` keeps the record's id, label, patient and meta; its raw signal is dropped (an empty
    array), so holding or sending many of these costs only the windows.
    """

    record: Record
    windows: np.ndarray
    leads: tuple[str, ...]
    start_s: np.ndarray
    quality: np.ndarray
    index: np.ndarray
    rejected: int = 0

    @property
    def ids(self) -> list[str]:
        """``"<record>:w<k>"`` with k the window's position in the record (stable under the gate)."""
        return [f"{self.record.id}:w{int(k)}" for k in self.index]


def _fill_nan(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """NaN/Inf replaced by linear interpolation per lead; the mask of bad samples (None if clean)."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return x, None
    x = x.copy()
    t = np.arange(x.shape[-1])
    for i in range(x.shape[0]):
        m = bad[i]
        if m.all():
            x[i] = 0.0
        elif m.any():
            x[i, m] = np.interp(t[m], t[~m], x[i, ~m])
    return x, bad.any(axis=0)


def preprocess_record(record: Record, config: PreprocessConfig) -> RecordWindows | Problem:
    """One record through leads, resampling, cleaning, windows and the quality gate.

    Returns the record's windows, or a :class:`Problem` when the record cannot give any window
    (missing lead, unexpected fs, too short, unusable values). Windows failing the quality gate
    are counted in ``rejected``.
    """
    rid = record.id
    if not (np.isfinite(record.fs) and record.fs > 0):
        return Problem(rid, "unexpected-fs", f"sampling rate {record.fs}")
    if config.allowed_fs is not None and not any(abs(record.fs - f) < 1e-6 for f in config.allowed_fs):
        return Problem(rid, "unexpected-fs", f"{record.fs:g} Hz is not in allowed_fs {list(config.allowed_fs)}")
    min_fs = 2 * config.bandpass[1] if config.cleaning == "bandpass" else 2.0
    if record.fs <= min_fs:
        return Problem(rid, "unexpected-fs", f"{record.fs:g} Hz is too low for {config.cleaning} cleaning")
    try:
        x, names = select_leads(record, config.leads)
    except KeyError as err:
        return Problem(rid, "missing-lead", str(err).strip("'\""))
    odd = [n for n in names if n not in STANDARD_LEADS]
    if odd:
        return Problem(rid, "missing-lead", f"lead {odd[0]!r} is not a standard lead name; name it in the source "
                       "(e.g. single_lead_as='I' for single-lead records)")
    if x.shape[-1] == 0 or not np.isfinite(x).any():
        return Problem(rid, "bad-values", "no finite samples")
    x, bad_mask = _fill_nan(np.asarray(x, dtype=np.float64))
    y = resample(x, record.fs, config.fs)
    w = config.window_samples
    n = y.shape[-1]
    if n < w:
        if config.short_records == "pad" and n >= config.min_pad_fraction * w:
            y = np.pad(y, ((0, 0), (0, w - n)), mode="edge")
        else:
            return Problem(rid, "too-short", f"{n / config.fs:.2f} s is shorter than a {config.window_s:g} s window")
    y = clean(y, config.fs, config)
    starts = window_starts(y.shape[-1], config)
    idx = starts[:, None] + np.arange(w)[None, :]
    windows = y[:, idx].transpose(1, 0, 2)  # [W, leads, samples]
    scores = quality_scores(windows, config.saturation_mv)
    if bad_mask is not None:  # a window touching a NaN/Inf sample of the raw record scores 0
        t_raw = np.flatnonzero(bad_mask) / record.fs
        for k, s in enumerate(starts):
            t0, t1 = s / config.fs, (s + w) / config.fs
            if np.any((t_raw >= t0) & (t_raw < t1)):
                scores[k] = 0.0
    keep = scores >= config.quality_threshold if config.quality == "reference" else np.ones(len(scores), bool)
    return RecordWindows(
        record=attrs.evolve(record, signal=np.zeros((len(record.leads), 0), np.float32)),  # drop the raw signal
        windows=windows[keep].astype(np.float32),
        leads=names,
        start_s=(starts[keep] / config.fs).astype(np.float32),
        quality=scores[keep].astype(np.float32),
        index=np.flatnonzero(keep),
        rejected=int((~keep).sum()),
    )
