"""Non-learned completions the diffusion model is measured against (same inputs, same masks).

* :func:`linear_interpolation`: straight lines across each gap; past the last known sample it
  holds the last value (so for forecasting it is "carry the last value forward").
* :func:`beat_repeat`: fills x[t] from x[t - RR] (or x[t + RR] before the first known beat), RR
  measured between R peaks detected in the known part (the last RR for a forecast, the median
  RR otherwise); that is, the previous beat repeated, aligned on the R peaks.
* :func:`previous_beat`: for R-aligned heartbeats, the previous beat of the same window.
"""

from __future__ import annotations

import numpy as np

from augframe.errors import ValidationError

from augframe_diffecg.beats import detect_r_peaks


def _check(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, mask = np.asarray(x, dtype=np.float32), np.asarray(mask, dtype=bool)
    if x.shape != mask.shape or x.ndim != 3:
        raise ValidationError(f"baseline needs x and mask of one shape [N, leads, samples]; got {x.shape}, {mask.shape}")
    return x, mask


def linear_interpolation(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    x, mask = _check(x, mask)
    out = x.copy()
    pos = np.arange(x.shape[-1])
    for i in range(x.shape[0]):
        for lead in range(x.shape[1]):
            m = mask[i, lead]
            if m.all():
                continue
            if not m.any():
                out[i, lead] = 0.0
                continue
            out[i, lead, ~m] = np.interp(pos[~m], pos[m], x[i, lead, m])
    return out


def _rr(peaks: np.ndarray, known: np.ndarray, fs: float, last: bool) -> int | None:
    """RR interval (samples) from consecutive peaks with only known samples between them."""
    if len(peaks) < 2:
        return None
    cum = np.concatenate([[0], np.cumsum(~known)])
    ok = cum[peaks[1:] + 1] - cum[peaks[:-1]] == 0
    rr = np.diff(peaks)[ok & (np.diff(peaks) <= 2.0 * fs)]
    if len(rr) == 0:
        return None
    return int(rr[-1] if last else np.median(rr))


def beat_repeat(x: np.ndarray, mask: np.ndarray, fs: float, forecast: bool = False) -> tuple[np.ndarray, int]:
    """(completion, number of rows that fell back to linear interpolation for want of two R peaks)."""
    x, mask = _check(x, mask)
    out = linear_interpolation(x, mask)
    known_any = mask.any(axis=1)  # [N, S]: a time is usable when the peak lead is known there
    peaks = detect_r_peaks(out[:, 0], fs)
    fallback = 0
    margin = int(0.08 * fs)
    for i in range(x.shape[0]):
        known = mask[i, 0]
        away = np.convolve((~known).astype(np.int64), np.ones(2 * margin + 1, dtype=np.int64), mode="same") == 0
        pk = peaks[i][away[peaks[i]]] if len(peaks[i]) else peaks[i]
        rr = _rr(pk, known, fs, last=forecast)
        if rr is None or not known_any[i].any():
            fallback += 1
            continue
        for lead in range(x.shape[1]):
            m = mask[i, lead].copy()
            row = out[i, lead].copy()
            for t in np.flatnonzero(~m):  # ascending: copy from one beat earlier
                if t - rr >= 0 and m[t - rr]:
                    row[t] = row[t - rr]
                    m[t] = True
            for t in np.flatnonzero(~m)[::-1]:  # what is left (gap at the start): one beat later
                if t + rr < len(row) and m[t + rr]:
                    row[t] = row[t + rr]
                    m[t] = True
            out[i, lead] = row
    return out, fallback


def previous_beat(beats: np.ndarray, mask: np.ndarray, window: np.ndarray, ordinal: np.ndarray) -> tuple[np.ndarray, int]:
    """Fill each R-aligned beat's gap from the previous beat of its window (the next one for the first).

    ``window`` / ``ordinal`` identify a beat's source window and position (as :func:`cut_beats`
    writes them in meta). Returns (completion, rows with no neighbour, left as linear interpolation).
    """
    x, mask = _check(beats, mask)
    out = linear_interpolation(x, mask)
    key = {(int(w), int(o)): i for i, (w, o) in enumerate(zip(window, ordinal))}
    missing = 0
    for i, (w, o) in enumerate(zip(window, ordinal)):
        j = key.get((int(w), int(o) - 1), key.get((int(w), int(o) + 1)))
        if j is None:
            missing += 1
            continue
        out[i] = np.where(mask[i], x[i], x[j])
    return out, missing


def masked_errors(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """MAE and RMSE over the unknown entries (mask False), pooled over all samples; in signal units."""
    miss = ~np.asarray(mask, dtype=bool)
    if not miss.any():
        raise ValidationError("no unknown entries to score: the mask marks everything as known")
    d = (np.asarray(pred, np.float64) - np.asarray(truth, np.float64))[miss]
    return {"mae": float(np.abs(d).mean()), "rmse": float(np.sqrt((d ** 2).mean())), "n": int(miss.sum())}
