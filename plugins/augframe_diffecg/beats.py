"""R-peak detection and heartbeat cutting: fixed-length beats centred on detected R peaks.

The paper trains on MIT-BIH heartbeats; here beats are cut from any ECGBatch (e.g. CinC 2017
windows) at ``pre`` seconds before and ``post`` seconds after each R peak, so every beat has the
same length and its R peak at the same index.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

from augframe.errors import ValidationError
from augframe.signals import ECGBatch


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
    qrs = sps.sosfiltfilt(sps.butter(3, [5 / nyq, min(20 / nyq, 0.99)], btype="band", output="sos"), x, axis=-1)
    wide = sps.sosfiltfilt(sps.butter(2, [0.5 / nyq, min(40 / nyq, 0.99)], btype="band", output="sos"), x, axis=-1)
    energy = np.gradient(qrs, axis=-1) ** 2
    win = max(1, int(0.1 * fs))
    energy = sps.fftconvolve(energy, np.ones((1, win)) / win, mode="same", axes=-1)
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


def cut_beats(batch: ECGBatch, pre_s: float = 0.256, post_s: float = 0.512, lead: int = 0,
              max_per_window: int | None = None) -> ECGBatch:
    """Fixed-length beats around the R peaks of ``batch`` (peaks found on lead ``lead``).

    Beats keep the window's label; meta holds ``window`` (source row), ``r_index`` (peak position
    in the source) and ``beat`` (ordinal within the source window), so a beat's predecessor is
    known. Beats that would run past either end of the window are skipped.
    """
    x = batch.numpy()
    pre, post = int(round(pre_s * batch.fs)), int(round(post_s * batch.fs))
    if pre < 1 or post < 1:
        raise ValidationError(f"beat pre_s={pre_s} and post_s={post_s} must each span at least one sample")
    peaks = detect_r_peaks(x[:, lead], batch.fs)
    rows, starts, ordinals = [], [], []
    for i, pk in enumerate(peaks):
        pk = pk[(pk - pre >= 0) & (pk + post <= x.shape[-1])]
        if max_per_window is not None:
            pk = pk[:max_per_window]
        rows.extend([i] * len(pk))
        starts.extend((pk - pre).tolist())
        ordinals.extend(range(len(pk)))
    rows_a, starts_a = np.asarray(rows, dtype=np.int64), np.asarray(starts, dtype=np.int64)
    idx = starts_a[:, None] + np.arange(pre + post)[None, :]
    beats = x[rows_a[:, None], :, idx].transpose(0, 2, 1) if len(rows_a) else np.zeros((0, x.shape[1], pre + post))
    labels = None if batch.labels is None else batch.labels[rows_a]
    meta = {"window": rows_a, "r_index": starts_a + pre, "beat": np.asarray(ordinals, dtype=np.int64)}
    for k, v in batch.meta.items():
        meta[k] = v[rows_a]
    ids = [f"{batch.ids[r]}/b{o}" for r, o in zip(rows_a, ordinals)]
    return ECGBatch(np.ascontiguousarray(beats, dtype=np.float32), batch.fs, batch.leads, labels=labels,
                    class_names=batch.class_names, ids=ids, meta=meta, units=batch.units)
