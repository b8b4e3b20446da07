"""Per-ECG measurements the improved validator judges, computed for a whole batch at once.

Inputs are ``[N, L]`` float signals in mV at ``fs``. Beats are cut around detected R apices into
one ``[beats, W]`` array for the batch; per-row templates are segment sums (``np.add.reduceat``)
over the row-sorted beats, so nothing loops over ECGs in Python.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from augframe_plausibility.apex import ApexSettings, bands, detect
from augframe_plausibility.peaks import Peaks, row_count, row_mean, row_median


def _row_slices(rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    cnt = row_count(rows, n)
    start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    return start, cnt


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(-1) / den, 0.0)


def flat_top_fraction(x: np.ndarray, rel_level: float = 0.02) -> np.ndarray:
    """Fraction of samples inside flat runs (equal to BOTH neighbours) at the row's extremes: clipping.

    Only samples within ``rel_level`` of the range from the maximum or minimum are examined. Needing
    both neighbours equal makes it blind to amplitude quantisation (1 uV ADC steps repeat a value
    twice at a slow trough) while a clipped peak stays flat for many samples.
    """
    n, length = x.shape
    hi = x.max(axis=-1, keepdims=True)
    lo = x.min(axis=-1, keepdims=True)
    span = np.maximum(hi - lo, 1e-12)
    near = np.flatnonzero((x >= hi - rel_level * span) | (x <= lo + rel_level * span))
    rows, cols = near // length, near % length
    inner = (cols > 0) & (cols < length - 1)
    near, rows = near[inner], rows[inner]
    xf = x.reshape(-1)
    tol = 1e-6 * span[rows, 0]
    v = xf[near]
    still = (np.abs(v - xf[near - 1]) <= tol) & (np.abs(v - xf[near + 1]) <= tol)
    return np.bincount(rows[still], minlength=n) / length


def measure(x: np.ndarray, fs: float, s: ApexSettings = ApexSettings(), rhythm_only: bool = False,
            ) -> dict[str, np.ndarray]:
    """All measurements of ``[N, L]`` mV signals; NaN where a quantity is undefined (too few beats).

    ``rhythm_only`` stops after the RR measures (what a source needs for the direction check).
    """
    n, length = x.shape
    c, d, hf = bands(x, fs, s)
    peaks, polarity, _ = detect(x, fs, s, filtered=(c, d))
    out: dict[str, np.ndarray] = {"polarity": polarity, "n_beats": peaks.counts.astype(float)}
    if rhythm_only:
        _rhythm(peaks, fs, out)
        out["peaks"] = peaks  # type: ignore[assignment]
        return out
    out["hf_fraction"] = hf
    out["flat_top_fraction"] = flat_top_fraction(x)
    _rhythm(peaks, fs, out)
    _beats(c, peaks, polarity, fs, out)
    out["peaks"] = peaks  # type: ignore[assignment]
    return out


def _rhythm(peaks: Peaks, fs: float, out: dict[str, np.ndarray]) -> None:
    n = peaks.n
    rows, d = peaks.intervals()
    rr = d / fs
    med = row_median(rows, rr, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["heart_rate"] = 60.0 / med
    out["rr_min"] = np.full(n, np.nan)
    out["rr_max"] = np.full(n, np.nan)
    if len(rr):
        order = np.lexsort((rr, rows))
        start, cnt = _row_slices(rows, n)
        has = cnt > 0
        srt = rr[order]
        out["rr_min"][has] = srt[start[has]]
        out["rr_max"][has] = srt[start[has] + cnt[has] - 1]
    # successive RR differences within a row
    same = rows[1:] == rows[:-1]
    drows = rows[1:][same]
    drr = np.diff(rr)[same]
    mean_rr = row_mean(rows, rr, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rr_cv"] = np.sqrt(row_mean(rows, (rr - mean_rr[rows]) ** 2, n)) / mean_rr
        out["nrmssd"] = np.sqrt(row_mean(drows, drr * drr, n)) / mean_rr
        # share of successive differences above 50 ms (pNN50-style, robust to one ectopic)
        out["pnn50"] = row_mean(drows, (np.abs(drr) > 0.05).astype(float), n)
    # heart-rate step: largest change of the median RR between the beats before and after a point
    out["rr_step"] = _rr_step(rows, rr, n)


def _rr_step(rows: np.ndarray, rr: np.ndarray, n: int, side: int = 3) -> np.ndarray:
    """max over split points of |log(mean of `side` RRs before / mean of `side` RRs after)|."""
    out = np.full(n, np.nan)
    m = len(rr)
    if m < 2 * side:
        return out
    c = np.concatenate([[0.0], np.cumsum(np.log(rr))])
    j = np.arange(side, m - side + 1)
    same = (rows[j - side] == rows[np.minimum(j + side - 1, m - 1)])
    j = j[same]
    before = (c[j] - c[j - side]) / side
    after = (c[j + side] - c[j]) / side
    val = np.abs(before - after)
    acc = np.full(n, -np.inf)
    np.maximum.at(acc, rows[j], val)
    ok = np.isfinite(acc)
    out[ok] = acc[ok]
    return out


def _beats(c: np.ndarray, peaks: Peaks, polarity: np.ndarray, fs: float, out: dict[str, np.ndarray]) -> None:
    n, length = c.shape
    pre, post = int(round(0.30 * fs)), int(round(0.45 * fs))
    inside = (peaks.cols - pre >= 0) & (peaks.cols + post < length)
    bp = peaks.keep(inside)
    offs = np.arange(-pre, post + 1)
    beats = (c[bp.rows[:, None], bp.cols[:, None] + offs[None, :]] * polarity[bp.rows][:, None]).astype(np.float32)
    start, cnt = _row_slices(bp.rows, n)
    has = cnt >= 2
    out["n_template_beats"] = cnt.astype(float)
    nan = np.full(n, np.nan)
    for k in ("qrs_width_ms", "qrs_amplitude_mv", "beat_corr", "p_coherence", "p_ratio", "t_minus_p",
              "split_corr_wide", "split_amp_ratio"):
        out[k] = nan.copy()
    if not has.any():
        return
    sums = np.zeros((n, len(offs)), dtype=np.float64)
    sums[cnt > 0] = np.add.reduceat(beats, start[cnt > 0], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tmpl = sums / cnt[:, None]
    apex = pre
    q = int(round(0.08 * fs))
    qrs = slice(apex - q, apex + q + 1)
    # QRS amplitude and width on the template
    t_qrs = tmpl[:, qrs]
    amp = t_qrs.max(-1) - t_qrs.min(-1)
    out["qrs_amplitude_mv"] = np.where(has, amp, np.nan)
    out["qrs_width_ms"] = np.where(has, _qrs_width(tmpl, apex, fs), np.nan)
    # beat-to-template similarity over the QRS (median over beats)
    bc = _corr(beats[:, qrs].astype(np.float64), tmpl[bp.rows][:, qrs])
    out["beat_corr"] = np.where(has, row_median(bp.rows, bc, n), np.nan)
    # P wave: a coherent deflection 80-300 ms before the apex survives averaging; f-waves do not
    p_reg = slice(apex - int(round(0.30 * fs)), apex - int(round(0.08 * fs)))
    tp = tmpl[:, p_reg]
    tmpl_p = tp.max(-1) - tp.min(-1)
    bpp = beats[:, p_reg]
    beat_p = row_median(bp.rows, (bpp.max(-1) - bpp.min(-1)).astype(np.float64), n)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["p_coherence"] = np.where(has, tmpl_p / beat_p, np.nan)
        out["p_ratio"] = np.where(has, tmpl_p / amp, np.nan)
    # T after QRS carries more energy than P before it (false for a time-reversed ECG)
    e_before = (_detrend(tmpl[:, apex - int(round(0.28 * fs)):apex - int(round(0.10 * fs))]) ** 2).mean(-1)
    e_after = (_detrend(tmpl[:, apex + int(round(0.10 * fs)):apex + int(round(0.40 * fs))]) ** 2).mean(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["t_minus_p"] = np.where(has, (e_after - e_before) / (e_after + e_before), np.nan)
    w0 = apex - int(round(0.2 * fs))
    wide = slice(w0, apex + int(round(0.4 * fs)))
    _split(beats[:, wide].astype(np.float64), bp.rows, start, cnt, n, out, slice(qrs.start - w0, qrs.stop - w0))


def _detrend(seg: np.ndarray) -> np.ndarray:
    """Remove the straight line between a segment's ends (what is left is the wave, not the baseline)."""
    t = np.linspace(0.0, 1.0, seg.shape[-1])[None, :]
    return seg - (seg[:, :1] + (seg[:, -1:] - seg[:, :1]) * t)


def _qrs_width(tmpl: np.ndarray, apex: int, fs: float) -> np.ndarray:
    """QRS duration on the template: the span around the apex where the slope envelope exceeds 15 % of its peak."""
    slope = np.abs(np.gradient(tmpl, axis=-1))
    k = max(1, int(round(0.012 * fs)))
    env = uniform_filter1d(slope, size=k, axis=-1)
    w = int(round(0.12 * fs))
    lo, hi = apex - w, apex + w
    local = env[:, lo:hi + 1]
    above = local >= 0.15 * local.max(-1, keepdims=True)
    centre = apex - lo
    idx = np.arange(local.shape[1])[None, :]
    left_gap = np.where(~above & (idx < centre), idx, -1).max(-1)
    right_gap = np.where(~above & (idx > centre), idx, local.shape[1]).min(-1)
    return (right_gap - left_gap - 1) / fs * 1000.0


def _split(q: np.ndarray, rows: np.ndarray, start: np.ndarray, cnt: np.ndarray, n: int,
           out: dict[str, np.ndarray], amp_part: slice, min_side: int = 2) -> None:
    """Worst agreement between the beat templates before and after any beat boundary (splice test):
    lowest correlation of the two templates (``split_corr_wide``) and highest ratio of their QRS
    amplitudes (``split_amp_ratio``, over ``amp_part`` of the window)."""
    m = len(q)
    if m == 0:
        return
    csum = np.cumsum(q, axis=0)
    first = start[rows]
    pos = np.arange(m) - first + 1  # beats in the prefix ending at this beat
    total = cnt[rows]
    ok = (pos >= min_side) & (total - pos >= min_side)
    base = np.where(first[:, None] > 0, csum[np.maximum(first - 1, 0)], 0.0)
    pre_sum = csum - base
    last = first + total - 1
    suf_sum = csum[last] - csum
    with np.errstate(invalid="ignore", divide="ignore"):
        pre = pre_sum / pos[:, None]
        suf = suf_sum / np.maximum(total - pos, 1)[:, None]
    corr = _corr(pre, suf)
    a1 = np.ptp(pre[:, amp_part], axis=-1)
    a2 = np.ptp(suf[:, amp_part], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.maximum(a1, a2) / np.minimum(a1, a2)
    worst_corr = np.full(n, np.nan)
    worst_ratio = np.full(n, np.nan)
    r = rows[ok]
    if len(r):
        worst_corr_v = np.full(n, np.inf)
        np.minimum.at(worst_corr_v, r, corr[ok])
        worst_ratio_v = np.full(n, -np.inf)
        np.maximum.at(worst_ratio_v, r, ratio[ok])
        hit = np.isfinite(worst_corr_v)
        worst_corr[hit] = worst_corr_v[hit]
        worst_ratio[hit] = worst_ratio_v[hit]
    out["split_corr_wide"] = worst_corr
    out["split_amp_ratio"] = worst_ratio
