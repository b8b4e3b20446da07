"""Waves measured at detected beats: coherent atrial activity before the QRS (P waves).

P-wave coherence of one window: cut the segment [R - 250 ms, R - 80 ms] before every beat,
remove each segment's mean and linear trend (baseline wander), average the segments into a
template, and divide the template's peak-to-peak amplitude by the RMS over the segment of the
beat-to-beat standard deviation. A P wave before every QRS adds up in the template while the
variation stays at the noise level (sinus rhythm: median 4.6 on CinC 2017 with wfdb XQRS);
fibrillatory waves have no fixed timing relative to the QRS and average out (AF: median 1.2).
Unitless, so it does not depend on the signal's scale. Windows with fewer than 4 complete
segments get NaN. (R amplitude, the other measure at beats, is ``augframe.beats.r_amplitude``.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

P_WINDOW_S = (0.250, 0.080)  # start and end before R
MIN_P_BEATS = 4


def _rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[:, 0, :] if x.ndim == 3 else x


def _segments(row: np.ndarray, peaks: np.ndarray, before: int, after: int) -> np.ndarray:
    """``[beats, before + after]`` samples around each beat whose segment lies inside the row."""
    p = np.asarray(peaks, dtype=np.int64)
    p = p[(p - before >= 0) & (p + after <= len(row))]
    if not len(p):
        return np.zeros((0, before + after))
    return row[p[:, None] + np.arange(-before, after)[None, :]]


def p_wave_coherence(x: np.ndarray, peaks: Sequence[np.ndarray], fs: float) -> np.ndarray:
    """P-wave coherence (module docstring) of each ECG ``[N, samples]`` or ``[N, leads, samples]`` (first lead)."""
    x = _rows(x)
    start, end = int(round(P_WINDOW_S[0] * fs)), int(round(P_WINDOW_S[1] * fs))
    t = np.arange(start - end, dtype=np.float64)
    t -= t.mean()
    out = np.full(len(x), np.nan)
    for i, (row, p) in enumerate(zip(x, peaks)):
        seg = _segments(row, p, start, -end)
        if len(seg) < MIN_P_BEATS:
            continue
        seg = seg - seg.mean(axis=1, keepdims=True)
        seg = seg - ((seg @ t) / (t @ t))[:, None] * t[None, :]
        spread = np.sqrt(np.mean(seg.var(axis=0, ddof=1)))
        if spread > 0:
            out[i] = np.ptp(seg.mean(axis=0)) / spread
    return out
