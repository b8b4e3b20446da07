"""The reference validator's checks and weights, exactly, vectorised over a batch.

Mirrors DiffStyleTS ``plausibility_validator.py`` as specified in section 8 of the reference spec:
a causal 5-40 Hz Butterworth (order 4, SOS) band-pass, |first difference|, threshold mean + 2 std,
``find_peaks(distance=75)``; morphology (4 checks / 4), physiology (3 checks / 3), clinical
(1.5 direction + 1.0 correlation + 0.5 std ratio, / 3); score 0.3 M + 0.3 Phi + 0.4 C, valid if > 0.7.
Constants are the reference's own (fs 250), kept in :data:`FAITHFUL` so nothing is scattered.

Everything is one numpy/scipy call over ``[N, samples]``, the peak picking included:
:func:`peakpick.find_peaks_batch` returns exactly scipy's ``find_peaks(height, distance)`` peaks
(rows where scipy's tie rules could matter are handed to scipy itself).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import attrs
import numpy as np
from scipy.signal import butter, sosfilt
from scipy.stats import pearsonr

from augframe_plausibility.peakpick import find_peaks_batch
from augframe_plausibility.peaks import Peaks, row_all, row_count, row_mean, row_std


@attrs.frozen
class FaithfulConstants:
    """The reference's hard-coded constants (spec section 8)."""

    fs: float = 250.0
    band_hz: tuple[float, float] = (5.0, 40.0)
    order: int = 4
    threshold_std: float = 2.0
    min_distance: int = 75
    amplitude_limit: float = 3.0
    min_peaks: int = 3
    qrs_amplitude: float = 0.2
    qrs_fraction: float = 0.7
    spike_mads: float = 10.0
    spike_fraction: float = 0.01
    rr_range_s: tuple[float, float] = (0.3, 2.0)
    hr_range_bpm: tuple[float, float] = (30.0, 200.0)
    max_rr_cv: float = 0.6
    af_cv_gain: float = 1.3
    normal_cv_gain: float = 0.8
    min_correlation: float = 0.6
    std_ratio_range: tuple[float, float] = (0.5, 2.0)
    weights: tuple[float, float, float] = (0.3, 0.3, 0.4)
    clinical_points: tuple[float, float, float] = (1.5, 1.0, 0.5)
    accept_above: float = 0.7


FAITHFUL = FaithfulConstants()


@functools.lru_cache(maxsize=8)
def _band_sos(fs: float, lo: float, hi: float, order: int) -> np.ndarray:
    return butter(order, [lo, hi], btype="band", fs=fs, output="sos")


def detect_diff_peaks(x: np.ndarray, c: FaithfulConstants = FAITHFUL) -> Peaks:
    """The reference detector on ``[N, L]``: indices of |diff| peaks of the causally filtered signal."""
    sos = _band_sos(c.fs, *c.band_hz, c.order)
    d = np.abs(np.diff(sosfilt(sos, x, axis=-1), axis=-1))
    thr = d.mean(axis=-1) + c.threshold_std * d.std(axis=-1)
    return find_peaks_batch(d, thr, c.min_distance)


def _median_abs_dev(x: np.ndarray) -> np.ndarray:
    return np.median(np.abs(x - np.median(x, axis=-1, keepdims=True)), axis=-1)


def morphology(x: np.ndarray, peaks: Peaks, c: FaithfulConstants = FAITHFUL) -> dict[str, np.ndarray]:
    n = len(x)
    counts = peaks.counts
    amp_ok = (x.min(axis=-1) >= -c.amplitude_limit) & (x.max(axis=-1) <= c.amplitude_limit)
    detected = counts >= c.min_peaks
    big = np.abs(x[peaks.rows, peaks.cols]) > c.qrs_amplitude
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = row_count(peaks.rows[big], n) / counts
    qrs_ok = np.where(counts > 0, frac >= c.qrs_fraction, False)
    absx = np.abs(x)
    level = np.median(absx, axis=-1) + c.spike_mads * _median_abs_dev(x)
    spikes_ok = (absx > level[:, None]).mean(axis=-1) < c.spike_fraction
    score = (amp_ok.astype(float) + detected + qrs_ok + spikes_ok) / 4.0
    return {"amplitude_valid": amp_ok, "num_r_peaks": counts, "r_peaks_detected": detected,
            "valid_qrs_complexes": qrs_ok, "has_qrs_check": counts > 0, "no_extreme_spikes": spikes_ok,
            "score": score}


def rr_stats(peaks: Peaks, fs: float) -> dict[str, np.ndarray]:
    """Per-row RR intervals summarised: mean (s), population CV, and the raw intervals."""
    rows, d = peaks.intervals()
    rr = d / fs
    mean = row_mean(rows, rr, peaks.n)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = row_std(rows, rr, peaks.n) / mean
    return {"rows": rows, "rr": rr, "mean_rr": mean, "rr_cv": cv}


def physiology(peaks: Peaks, rr: dict[str, np.ndarray], c: FaithfulConstants = FAITHFUL) -> dict[str, np.ndarray]:
    n = peaks.n
    have = peaks.counts >= 2
    lo, hi = c.rr_range_s
    rr_ok = row_all(rr["rows"], (rr["rr"] >= lo) & (rr["rr"] <= hi), n) & have
    with np.errstate(invalid="ignore", divide="ignore"):
        hr = 60.0 / rr["mean_rr"]
    hr_ok = (hr >= c.hr_range_bpm[0]) & (hr <= c.hr_range_bpm[1]) & have
    cv_ok = (rr["rr_cv"] < c.max_rr_cv) & have
    score = np.where(have, (rr_ok.astype(float) + hr_ok + cv_ok) / 3.0, 0.0)
    return {"applicable": have, "mean_rr": rr["mean_rr"], "rr_intervals_valid": rr_ok, "heart_rate": hr,
            "heart_rate_valid": hr_ok, "rr_cv": rr["rr_cv"], "rr_cv_valid": cv_ok, "score": score}


def _pearson32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r as the reference gets it: scipy ``pearsonr`` on float32 (float32 result).

    Constant rows (r undefined) give NaN, which fails the similarity check, without a warning.
    """
    out = np.full(len(a), np.nan)
    ok = (np.ptp(a, axis=-1) > 0) & (np.ptp(b, axis=-1) > 0)
    if ok.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[ok] = pearsonr(a[ok], b[ok], axis=-1)[0]
    return out


def clinical(
    cand: np.ndarray, src: np.ndarray, cand_rr: dict[str, np.ndarray], src_rr: dict[str, np.ndarray],
    cand_counts: np.ndarray, src_counts: np.ndarray, target_af: np.ndarray, target_known: np.ndarray,
    c: FaithfulConstants = FAITHFUL,
) -> dict[str, np.ndarray]:
    """Clinical points against the source; ``cand``/``src`` are the float32 signals as given."""
    have = (cand_counts >= 2) & (src_counts >= 2)
    new, old = cand_rr["rr_cv"], src_rr["rr_cv"]
    direction = np.where(target_af, new > c.af_cv_gain * old, new < c.normal_cv_gain * old) & target_known
    corr = _pearson32(cand, src)
    similar = corr > c.min_correlation
    # float32 std of the arrays as given, with the reference's 1e-8 guard in the denominator.
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (cand.std(axis=-1) / (src.std(axis=-1) + np.float32(1e-8))).astype(np.float64)
    kept = (ratio > c.std_ratio_range[0]) & (ratio < c.std_ratio_range[1])
    p_dir, p_sim, p_std = c.clinical_points
    pts = p_dir * direction + p_sim * similar + p_std * kept
    score = np.where(have, pts / sum(c.clinical_points), 0.0)
    return {"applicable": have, "original_rr_cv": old, "new_rr_cv": new, "rr_direction_correct": direction & have,
            "correlation": corr, "good_similarity": similar & have, "std_ratio": ratio,
            "std_preserved": kept & have, "score": score}


def details_of(result: dict[str, Any], i: int) -> dict[str, dict[str, Any]]:
    """Sample i's checks in the reference's ``details`` layout (keys absent where it omits them)."""
    m, p, cl = result["morphology"], result["physiology"], result.get("clinical")
    morph = {"amplitude_valid": bool(m["amplitude_valid"][i]), "num_r_peaks": int(m["num_r_peaks"][i]),
             "r_peaks_detected": bool(m["r_peaks_detected"][i])}
    if m["has_qrs_check"][i]:
        morph["valid_qrs_complexes"] = bool(m["valid_qrs_complexes"][i])
    morph["no_extreme_spikes"] = bool(m["no_extreme_spikes"][i])
    phys: dict[str, Any] = {}
    if p["applicable"][i]:
        phys = {"mean_rr": float(p["mean_rr"][i]), "rr_intervals_valid": bool(p["rr_intervals_valid"][i]),
                "heart_rate": float(p["heart_rate"][i]), "heart_rate_valid": bool(p["heart_rate_valid"][i]),
                "rr_cv": float(p["rr_cv"][i]), "rr_cv_valid": bool(p["rr_cv_valid"][i])}
    clin: dict[str, Any] = {}
    if cl is not None and cl["applicable"][i]:
        clin = {k: (bool(cl[k][i]) if cl[k].dtype == bool else float(cl[k][i]))
                for k in ("original_rr_cv", "new_rr_cv", "rr_direction_correct", "correlation",
                          "good_similarity", "std_ratio", "std_preserved")}
    return {"morphology": morph, "physiology": phys, "clinical": clin}


def run_faithful(
    cand: np.ndarray, src: np.ndarray | None, target_af: np.ndarray, target_known: np.ndarray,
    c: FaithfulConstants = FAITHFUL,
) -> dict[str, Any]:
    """All reference checks for float32 ``[N, L]`` candidates (and optional sources)."""
    x = cand.astype(np.float64)
    peaks = detect_diff_peaks(x, c)
    morph = morphology(x, peaks, c)
    rr = rr_stats(peaks, c.fs)
    phys = physiology(peaks, rr, c)
    out: dict[str, Any] = {"peaks": peaks, "morphology": morph, "physiology": phys}
    if src is None:
        clin_score = np.ones(len(x))
    else:
        speaks = detect_diff_peaks(src.astype(np.float64), c)
        out["source_peaks"] = speaks
        out["clinical"] = clinical(cand, src, rr, rr_stats(speaks, c.fs), peaks.counts, speaks.counts,
                                   target_af, target_known, c)
        clin_score = out["clinical"]["score"]
    wm, wp, wc = c.weights
    score = wm * morph["score"] + wp * phys["score"] + wc * clin_score
    out["clinical_score"] = clin_score
    out["score"] = score
    out["valid"] = score > c.accept_above
    return out
