"""Ragged per-row peak lists for a batch, with vectorised per-row statistics.

Peaks of a batch of N signals are kept as two flat, row-sorted integer arrays (``rows``, ``cols``)
instead of N Python lists, so RR intervals, counts, means and "all rows satisfy" tests are single
numpy calls (``bincount``) over the whole batch.
"""

from __future__ import annotations

import attrs
import numpy as np


@attrs.frozen(eq=False)
class Peaks:
    """Peak positions of ``n`` rows: ``cols[k]`` is a sample index in row ``rows[k]``.

    ``rows`` is non-decreasing and, within a row, ``cols`` is increasing.
    """

    n: int
    rows: np.ndarray = attrs.field(converter=lambda a: np.asarray(a, dtype=np.int64))
    cols: np.ndarray = attrs.field(converter=lambda a: np.asarray(a, dtype=np.int64))

    @classmethod
    def from_lists(cls, lists: list[np.ndarray]) -> Peaks:
        counts = np.fromiter((len(p) for p in lists), dtype=np.int64, count=len(lists))
        rows = np.repeat(np.arange(len(lists)), counts)
        cols = np.concatenate(lists) if lists else np.zeros(0, np.int64)
        return cls(len(lists), rows, cols)

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.rows, minlength=self.n)

    def row(self, i: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.rows, [i, i + 1])
        return self.cols[lo:hi]

    def keep(self, mask: np.ndarray) -> Peaks:
        return Peaks(self.n, self.rows[mask], self.cols[mask])

    def intervals(self) -> tuple[np.ndarray, np.ndarray]:
        """Successive differences within each row: ``(rows, samples)`` of every interval."""
        same = self.rows[1:] == self.rows[:-1]
        return self.rows[1:][same], np.diff(self.cols)[same]


def gather_windows(x: np.ndarray, rows: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """``out[k] = x[rows[k], starts[k] : starts[k] + width]`` as a new ``[len(rows), width]`` array.

    Windows inside the row are copied from a sliding-window view (no ``[k, width]`` index arrays,
    which fancy indexing would build); windows that run past an end repeat the edge sample, as
    clipped indices would.
    """
    length = x.shape[1]
    rows = np.asarray(rows, dtype=np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    out = np.empty((len(rows), width), dtype=x.dtype)
    inside = (starts >= 0) & (starts + width <= length)
    if length >= width:
        out[inside] = np.lib.stride_tricks.sliding_window_view(x, width, axis=1)[rows[inside], starts[inside]]
    else:
        inside[:] = False
    edge = ~inside
    if edge.any():
        idx = np.clip(starts[edge, None] + np.arange(width)[None, :], 0, length - 1)
        out[edge] = x[rows[edge, None], idx]
    return out


def row_sum(rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(rows, weights=np.asarray(values, dtype=np.float64), minlength=n)


def row_count(rows: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(rows, minlength=n)


def row_mean(rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Mean per row (NaN for rows with no values)."""
    cnt = row_count(rows, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return row_sum(rows, values, n) / cnt


def row_std(rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Population standard deviation per row (two-pass, NaN for empty rows)."""
    mean = row_mean(rows, values, n)
    dev = np.asarray(values, dtype=np.float64) - mean[rows]
    with np.errstate(invalid="ignore"):
        return np.sqrt(row_mean(rows, dev * dev, n))


def row_all(rows: np.ndarray, ok: np.ndarray, n: int) -> np.ndarray:
    """True for rows where every value is ok (vacuously True for empty rows)."""
    return row_count(rows[~np.asarray(ok, dtype=bool)], n) == 0


def row_median(rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Median per row (NaN for empty rows), by one lexsort over the batch."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(n, np.nan)
    if values.size == 0:
        return out
    order = np.lexsort((values, rows))
    v = values[order]
    cnt = row_count(rows, n)
    start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    has = cnt > 0
    lo = start[has] + (cnt[has] - 1) // 2
    hi = start[has] + cnt[has] // 2
    out[has] = 0.5 * (v[lo] + v[hi])
    return out
