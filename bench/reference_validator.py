"""A per-sample, unvectorised re-statement of the reference validator: bench.validator's baseline.

It follows the reference's call pattern (one 1-D ECG per call, Python dicts of details, scipy per
call) so the speed-up of the batched faithful path is measured against the same work in the same
run. It shares the constants with ``augframe_plausibility.faithful``; :func:`check_parity` proves
it reproduces the reference fixture before a benchmark times it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import butter, find_peaks, sosfilt
from scipy.stats import pearsonr

from augframe_plausibility.faithful import FAITHFUL, FaithfulConstants


def detect(ecg: np.ndarray, c: FaithfulConstants = FAITHFUL) -> np.ndarray:
    sos = butter(c.order, list(c.band_hz), btype="band", fs=c.fs, output="sos")
    d = np.abs(np.diff(sosfilt(sos, ecg)))
    return find_peaks(d, height=d.mean() + c.threshold_std * d.std(), distance=c.min_distance)[0]


def validate_one(
    cand: np.ndarray, source: np.ndarray | None = None, target_class: int | None = None,
    c: FaithfulConstants = FAITHFUL,
) -> dict[str, Any]:
    """Validate one float32 1-D candidate; returns the reference's result dict layout."""
    peaks = detect(cand, c)
    morph: dict[str, Any] = {"amplitude_valid": bool(cand.min() >= -c.amplitude_limit and cand.max() <= c.amplitude_limit),
                             "num_r_peaks": len(peaks), "r_peaks_detected": len(peaks) >= c.min_peaks}
    if len(peaks):
        morph["valid_qrs_complexes"] = bool(np.mean(np.abs(cand[peaks]) > c.qrs_amplitude) >= c.qrs_fraction)
    mad = np.median(np.abs(cand - np.median(cand)))
    morph["no_extreme_spikes"] = bool(np.mean(np.abs(cand) > np.median(np.abs(cand)) + c.spike_mads * mad) < c.spike_fraction)
    m = sum(bool(morph[k]) for k in ("amplitude_valid", "r_peaks_detected", "valid_qrs_complexes", "no_extreme_spikes")
            if k in morph) / 4.0
    phys: dict[str, Any] = {}
    p = 0.0
    if len(peaks) >= 2:
        rr = np.diff(peaks) / c.fs
        mean_rr = float(np.mean(rr))
        hr = 60.0 / mean_rr
        cv = float(np.std(rr) / mean_rr)
        phys = {"mean_rr": mean_rr, "rr_intervals_valid": bool(np.all((rr >= c.rr_range_s[0]) & (rr <= c.rr_range_s[1]))),
                "heart_rate": hr, "heart_rate_valid": bool(c.hr_range_bpm[0] <= hr <= c.hr_range_bpm[1]),
                "rr_cv": cv, "rr_cv_valid": cv < c.max_rr_cv}
        p = (phys["rr_intervals_valid"] + phys["heart_rate_valid"] + phys["rr_cv_valid"]) / 3.0
    clin: dict[str, Any] = {}
    if source is None:
        cl = 1.0
    else:
        speaks = detect(source, c)
        cl = 0.0
        if len(peaks) >= 2 and len(speaks) >= 2:
            new = phys["rr_cv"]
            srr = np.diff(speaks) / c.fs
            old = float(np.std(srr) / np.mean(srr))
            if target_class is None:
                direction = False
            else:
                direction = new > c.af_cv_gain * old if target_class == 1 else new < c.normal_cv_gain * old
            corr = float(pearsonr(cand, source)[0])
            ratio = float(np.std(cand) / (np.std(source) + np.float32(1e-8)))
            clin = {"original_rr_cv": old, "new_rr_cv": new, "rr_direction_correct": bool(direction),
                    "correlation": corr, "good_similarity": corr > c.min_correlation, "std_ratio": ratio,
                    "std_preserved": bool(c.std_ratio_range[0] < ratio < c.std_ratio_range[1])}
            pd, ps, pk = c.clinical_points
            cl = (pd * clin["rr_direction_correct"] + ps * clin["good_similarity"] + pk * clin["std_preserved"]) / sum(c.clinical_points)
    score = c.weights[0] * m + c.weights[1] * p + c.weights[2] * cl
    return {"valid": score > c.accept_above, "score": score, "morphology_score": m, "physiology_score": p,
            "clinical_score": cl, "details": {"morphology": morph, "physiology": phys, "clinical": clin},
            "r_peaks": peaks}


def check_parity(fixture_json: Path, candidates: np.ndarray, sources: np.ndarray, targets: np.ndarray) -> None:
    """Raise SystemExit unless every fixture pair gets the reference's score and R peaks."""
    pairs = json.loads(Path(fixture_json).read_text())["pairs"]
    for i, pair in enumerate(pairs):
        out = validate_one(candidates[i], sources[i], int(targets[i]))
        if out["score"] != pair["result"]["score"] or out["r_peaks"].tolist() != pair["r_peaks_candidate"]:
            raise SystemExit(f"baseline differs from the reference fixture at pair {i}: not a fair baseline")
