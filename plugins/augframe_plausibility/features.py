"""Per-ECG measurements the improved validator judges, computed for a whole batch at once.

Inputs are ``[N, L]`` float signals in mV at ``fs``. Beats are cut around detected R apices into
one ``[beats, W]`` array for the batch; per-row templates are segment sums (``np.add.reduceat``)
over the row-sorted beats, so nothing loops over ECGs in Python.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from augframe_plausibility.apex import ApexSettings, bands, detect
from augframe_plausibility.peaks import Peaks, gather_windows, row_count, row_mean, row_median


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


def row_quantile(a: np.ndarray, q: float) -> np.ndarray:
    """Per-row order statistic at fraction ``q`` (the lower one; no interpolation) by one partition.

    ``np.median``/``np.percentile`` on a ``[N, L]`` float32 array cost several times a plain
    ``np.partition``; the validator needs only order statistics, not interpolated quantiles.
    """
    k = int(q * (a.shape[-1] - 1))
    return np.partition(a, k, axis=-1)[..., k]


#: jump detector settings: floor of the local scale = ``JUMP_FLOOR_SPIKE`` x median spike +
#: ``JUMP_FLOOR_SLOPE`` x median |first difference| (keeps tiny kinks in flat stretches from counting),
#: reference quantile of the window's own spike-to-slope ratios, and the time ignored at each end
#: (filter and generator edge transients live there; a join that close to an end splices no beat).
JUMP_FLOOR_SPIKE = 2.0
JUMP_FLOOR_SLOPE = 0.5
JUMP_REFERENCE_Q = 0.99
JUMP_EDGE_S = 0.1


def jump(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Discontinuity test (splice detector): (jump ratio, time of the jump in s) per row.

    An ECG is band-limited (the heart's signal and every front end's anti-alias filter), so its
    first difference changes smoothly from one sample to the next, even on the QRS upstroke. Two
    recordings joined at a sample leave a step there: one first difference that departs from its
    neighbours' mean by far more than they themselves move. Per sample, the "spike"
    ``|d[t] - (d[t-1] + d[t+1]) / 2|`` (d = first difference) is divided by the local slope
    scale (largest |d| of the two samples either side, plus a floor from the row's median spike
    and median slope); the jump ratio is the largest such value over the row's own 99th
    percentile of it. Both ratios are scale-free, so the test reads mV, z-scored and raw
    (uncleaned, noisier) windows alike: noise raises the percentile with the maximum.
    """
    x = np.asarray(x, dtype=np.float32)
    n, length = x.shape
    out_r, out_t = np.full(n, np.nan), np.full(n, np.nan)
    e = max(int(round(JUMP_EDGE_S * fs)), 3)
    if length < 2 * e + 8:
        return out_r, out_t
    d = np.diff(x, axis=1)                      # d[j] = x[j+1] - x[j]
    m = d.shape[1]
    # twice the spike at centres j = e-1 .. m-e: |d[j-1] - 2 d[j] + d[j+1]| (in place: few passes)
    sp2 = d[:, e - 2:m - e] + d[:, e:m - e + 2]
    mid = d[:, e - 1:m - e + 1]
    sp2 -= mid
    sp2 -= mid
    np.abs(sp2, out=sp2)
    np.abs(d, out=d)                            # d is |first difference| from here on
    pair = np.maximum(d[:, :-1], d[:, 1:])      # pair[j] = max(|d[j]|, |d[j+1]|)
    # local slope scale at centre j: max(|d[j-2]|, |d[j-1]|, |d[j+1]|, |d[j+2]|)
    near = np.maximum(pair[:, e - 3:m - e - 1], pair[:, e:m - e + 2])
    # v = spike / (near + floor) up to a factor 2 that the ratio below cancels: sp2 / (near + floor)
    floor = 0.5 * JUMP_FLOOR_SPIKE * row_quantile(sp2[:, ::2], 0.5) + JUMP_FLOOR_SLOPE * row_quantile(d[:, ::2], 0.5)
    near += (floor + np.float32(1e-30))[:, None]
    np.divide(sp2, near, out=sp2)
    v = sp2
    ref = row_quantile(v, JUMP_REFERENCE_Q)
    j = np.argmax(v, axis=1)
    top = v[np.arange(n), j]
    with np.errstate(invalid="ignore", divide="ignore"):
        out_r = np.where(ref > 0, top / ref, np.where(top > 0, np.inf, 1.0)).astype(np.float64)
    out_t = (j + e) / fs  # centre j+e-1: the step lies between samples j+e-1 and j+e
    return out_r, out_t


def measure(x: np.ndarray, fs: float, s: ApexSettings = ApexSettings(), rhythm_only: bool = False,
            ) -> dict[str, np.ndarray]:
    """All measurements of ``[N, L]`` mV signals; NaN where a quantity is undefined (too few beats).

    ``rhythm_only`` stops after the RR measures (what a source needs for the direction check).
    """
    n, length = x.shape
    c, d, hf = bands(x, fs, s, hf=not rhythm_only)
    peaks, polarity, _ = detect(x, fs, s, filtered=(c, d))
    out: dict[str, np.ndarray] = {"polarity": polarity, "n_beats": peaks.counts.astype(float)}
    if rhythm_only:
        _rhythm(peaks, fs, out)
        out["peaks"] = peaks  # type: ignore[assignment]
        return out
    out["hf_fraction"] = hf
    out["flat_top_fraction"] = flat_top_fraction(x)
    out["jump_ratio"], out["jump_s"] = jump(x, fs)
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


def _beats(c: np.ndarray, peaks: Peaks, polarity: np.ndarray, fs: float, out: dict[str, np.ndarray]) -> None:
    n, length = c.shape
    pre, post = int(round(0.30 * fs)), int(round(0.45 * fs))
    inside = (peaks.cols - pre >= 0) & (peaks.cols + post < length)
    bp = peaks.keep(inside)
    offs = np.arange(-pre, post + 1)
    beats = gather_windows(c, bp.rows, bp.cols - pre, len(offs)).astype(np.float32, copy=False)
    beats *= polarity[bp.rows].astype(np.float32)[:, None]
    start, cnt = _row_slices(bp.rows, n)
    has = cnt >= 2
    out["n_template_beats"] = cnt.astype(float)
    nan = np.full(n, np.nan)
    for k in ("qrs_width_ms", "qrs_amplitude_mv", "beat_corr", "p_coherence", "p_ratio", "t_minus_p"):
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
    bc = _corr(beats[:, qrs], tmpl[:, qrs].astype(np.float32)[bp.rows]).astype(np.float64)
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
