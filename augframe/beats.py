"""R-peak detection for generators and signal tools (QRS energy + apex refinement).

This is the detector generators use (e.g. to re-time beats). Evaluators that judge generated ECGs
use a different one (wfdb's XQRS, see the afib plugin), so a generator cannot please the
evaluation's detector by construction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import signal as sps

from augframe.errors import ValidationError


def qrs_energy(x: np.ndarray, fs: float) -> np.ndarray:
    """QRS energy per sample of ``x`` [N, samples]: squared derivative of the 5-20 Hz band, 100 ms average."""
    x = np.asarray(x, dtype=np.float64)
    nyq = fs / 2.0
    qrs = sps.sosfiltfilt(sps.butter(3, [5 / nyq, min(20 / nyq, 0.99)], btype="band", output="sos"), x, axis=-1)
    energy = np.gradient(qrs, axis=-1) ** 2
    win = max(1, int(0.1 * fs))
    return sps.fftconvolve(energy, np.ones((1, win)) / win, mode="same", axes=-1)


def unplaced_beats(x: np.ndarray, peaks: list[np.ndarray], fs: float, *, rel: float = 0.35,
                   halfwidth_s: float = 0.12) -> np.ndarray:
    """Rows of ``x`` [N, samples] with QRS-like energy away from every detected peak.

    True where the QRS energy more than ``halfwidth_s`` from all of the row's peaks exceeds ``rel`` x the
    median energy at the peaks: a beat the detector did not place (or fewer than two peaks at all).
    A tool that moves beats (re-timing) must not move such a row: the unplaced beat would land anywhere.
    """
    energy = qrs_energy(x, fs)
    half = int(round(halfwidth_s * fs))
    out = np.ones(len(energy), dtype=bool)
    for i, (e, p) in enumerate(zip(energy, peaks)):
        if len(p) < 2:
            continue
        away = np.ones(len(e), dtype=bool)
        for q in p:
            away[max(0, q - half):q + half] = False
        out[i] = bool(away.any()) and float(e[away].max()) > rel * float(np.median(e[p]))
    return out


def detect_r_peaks(x: np.ndarray, fs: float, min_rr_s: float = 0.25) -> list[np.ndarray]:
    """R-peak sample indices per row of ``x`` [N, samples] (one lead).

    QRS energy (5-20 Hz band, squared derivative, 100 ms moving average), peaks at least
    ``min_rr_s`` apart and above 30 % of the row's 99th percentile, then moved to the largest
    |amplitude| of the 0.5-40 Hz signal within 60 ms (so inverted leads work too).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValidationError(f"detect_r_peaks needs [N, samples], got shape {x.shape}")
    nyq = fs / 2.0
    wide = sps.sosfiltfilt(sps.butter(2, [0.5 / nyq, min(40 / nyq, 0.99)], btype="band", output="sos"), x, axis=-1)
    energy = qrs_energy(x, fs)
    half = max(1, int(0.06 * fs))
    out = []
    for e, w in zip(energy, wide):
        thr = 0.3 * np.percentile(e, 99)
        if thr <= 0:
            out.append(np.zeros(0, dtype=np.int64))
            continue
        peaks, _ = sps.find_peaks(e, height=thr, distance=max(1, int(min_rr_s * fs)))
        sign = np.sign(np.median(w[peaks])) if len(peaks) else 1.0
        refined = []
        for p in peaks:
            lo, hi = max(0, p - half), min(len(w), p + half + 1)
            refined.append(lo + int(np.argmax(w[lo:hi] * (sign if sign != 0 else 1.0))))
        out.append(np.unique(np.asarray(refined, dtype=np.int64)))
    return out


def r_amplitude(x: np.ndarray, peaks: Sequence[np.ndarray], fs: float, half_s: float = 0.06) -> np.ndarray:
    """Median QRS peak-to-peak amplitude of each row of ``x`` [N, samples] (first lead of [N, leads,
    samples]) within ``half_s`` of its beats, in signal units; NaN for a row without a complete beat."""
    x = np.asarray(x, dtype=np.float64)
    x = x[:, 0, :] if x.ndim == 3 else x
    half = int(round(half_s * fs))
    out = np.full(len(x), np.nan)
    for i, (row, p) in enumerate(zip(x, peaks)):
        p = np.asarray(p, dtype=np.int64)
        p = p[(p - half >= 0) & (p + half + 1 <= len(row))]
        if len(p):
            out[i] = float(np.median(np.ptp(row[p[:, None] + np.arange(-half, half + 1)[None, :]], axis=1)))
    return out
