"""Batched peak picking over ``[N, L]`` arrays: scipy ``find_peaks(height, distance)`` without a row loop.

scipy keeps, among local maxima at or above ``height``, peaks in descending height order and drops
any peak closer than ``distance`` to an already kept one. The same set comes out of repeated
non-maximum suppression: keep every candidate that is the largest among the candidates still
standing within ``distance - 1`` samples, drop the candidates within reach of a kept one, repeat.
A peak is kept in one scheme exactly when it is kept in the other (given distinct heights). The
candidates of the whole batch sit in one flat, row-sorted list, so each round is a few vector
comparisons against the neighbours within reach. Rows where scipy's tie rules matter (plateaus,
where scipy takes the middle, or equal heights within reach) are handed to scipy itself.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

from augframe_plausibility.peaks import Peaks


def local_maxima(x: np.ndarray, height: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strict local maxima at or above ``height`` of ``[N, L]``: (rows, cols, rows-with-plateaus).

    Thresholding first leaves a few percent of the samples, so the neighbour tests run on those only.
    """
    n, length = x.shape
    x = np.ascontiguousarray(x)
    flat = np.flatnonzero(x >= np.asarray(height, dtype=x.dtype).reshape(-1, 1))
    col = flat % length
    flat = flat[(col > 0) & (col < length - 1)]
    xf = x.reshape(-1)
    v = xf[flat]
    nxt = xf[flat + 1]
    rising = v > xf[flat - 1]
    peak = rising & (v > nxt)
    plateau = np.zeros(n, dtype=bool)
    plateau[flat[rising & (v == nxt)] // length] = True
    flat = flat[peak]
    return flat // length, flat % length, plateau


def _neighbours(rows: np.ndarray, cols: np.ndarray, reach: int) -> int:
    """How many list positions one must look ahead to see every candidate within ``reach`` samples."""
    k = 0
    while k + 1 < len(cols):
        ahead = (rows[k + 1:] == rows[: len(rows) - k - 1]) & (cols[k + 1:] - cols[: len(cols) - k - 1] < reach)
        if not ahead.any():
            break
        k += 1
    return k


def suppress(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy-by-height distance suppression on a row-sorted candidate list.

    Returns (kept mask, rows where equal heights met within reach and the result may differ from scipy).
    """
    m = len(cols)
    reach = int(np.ceil(distance))
    depth = _neighbours(rows, cols, reach)
    pairs = []
    for k in range(1, depth + 1):
        near = (rows[k:] == rows[:-k]) & (cols[k:] - cols[:-k] < reach)
        idx = np.flatnonzero(near)
        pairs.append((idx, idx + k))
    left = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros(0, np.int64)
    right = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0, np.int64)
    tie_rows = rows[left[vals[left] == vals[right]]]
    remaining = np.ones(m, dtype=bool)
    kept = np.zeros(m, dtype=bool)
    while remaining.any():
        live = remaining[left] & remaining[right]
        beaten = np.zeros(m, dtype=bool)
        beaten[left[live & (vals[right] > vals[left])]] = True
        beaten[right[live & (vals[left] > vals[right])]] = True
        winners = remaining & ~beaten
        kept |= winners
        covered = np.zeros(m, dtype=bool)
        covered[right[winners[left]]] = True
        covered[left[winners[right]]] = True
        remaining &= ~(winners | covered)
    return kept, np.unique(tie_rows)


def find_peaks_batch(x: np.ndarray, height: np.ndarray, distance: int) -> Peaks:
    """Peaks of each row of ``x`` (float ``[N, L]``), equal to scipy ``find_peaks(x[i], height=height[i], distance=distance)``."""
    n = len(x)
    rows, cols, plateau = local_maxima(x, height)
    kept, tie_rows = suppress(rows, cols, x[rows, cols], distance)
    plateau[tie_rows] = True
    out = Peaks(n, rows[kept], cols[kept])
    if not plateau.any():
        return out
    out = out.keep(~plateau[out.rows])
    h = np.broadcast_to(np.asarray(height, dtype=np.float64).reshape(-1), (n,))
    fixed = [find_peaks(x[i], height=h[i], distance=distance)[0] for i in np.flatnonzero(plateau)]
    extra = Peaks.from_lists(fixed)
    rows_all = np.concatenate([out.rows, np.flatnonzero(plateau)[extra.rows]])
    cols_all = np.concatenate([out.cols, extra.cols])
    order = np.lexsort((cols_all, rows_all))
    return Peaks(n, rows_all[order], cols_all[order])
