"""R-peak detection and heartbeat cutting: fixed-length beats centred on detected R peaks.

The paper trains on MIT-BIH heartbeats; here beats are cut from any ECGBatch (e.g. CinC 2017
windows) at ``pre`` seconds before and ``post`` seconds after each R peak, so every beat has the
same length and its R peak at the same index.
"""

from __future__ import annotations

import numpy as np

from augframe.beats import detect_r_peaks  # noqa: F401  (re-exported: the beat cutter's detector)
from augframe.errors import ValidationError
from augframe.signals import ECGBatch


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
