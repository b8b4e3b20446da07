"""The improved validator's checks: gates that reject on their own, and soft checks that lower the score.

Every check value is in [0, 1] (1 = passed). ``accept`` = every gate passed and the weighted score
reaches :attr:`Thresholds.accept_min_score`. Thresholds come only from :class:`config.Thresholds`.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from augframe_plausibility.config import Thresholds

#: check name -> (weight in the score, is a gate, reason template when it fails)
CHECKS: dict[str, tuple[float, bool, str]] = {
    "noise": (1.0, True, "{hf_fraction:.0%} of the power above 40 Hz (noise, not an ECG)"),
    "clipping": (1.0, True, "{flat_top_fraction:.1%} of samples stuck at the extreme (clipped)"),
    "amplitude": (1.0, True, "QRS amplitude {qrs_amplitude_mv:.2f} mV outside {lo:g}-{hi:g} mV"),
    "beats": (1.0, True, "{n_beats:.0f} beats detected (need {min_beats})"),
    "heart_rate": (1.0, True, "heart rate {heart_rate:.0f} bpm outside {hr_lo:g}-{hr_hi:g} bpm or a pause of {rr_max:.1f} s"),
    "qrs_present": (1.0, True, "QRS width {qrs_width_ms:.0f} ms is not a QRS complex"),
    "beat_consistency": (1.0, True, "beats do not repeat (median beat-template correlation {beat_corr:.2f})"),
    "splice": (1.0, True, "the signal jumps at {jump_s:.2f} s: a step {jump_ratio:.1f}x the window's own 99th "
                          "percentile of sample-to-sample slope changes (two recordings joined?)"),
    "rhythm_matches_label": (1.0, True, "rhythm contradicts the label: RMSSD/RR {nrmssd:.2f}, P coherence {p_coherence:.2f}"),
    "qrs_width": (0.5, False, "QRS width {qrs_width_ms:.0f} ms outside the normal {w_lo:g}-{w_hi:g} ms"),
    "wave_order": (0.5, False, "energy before the QRS exceeds the T wave after it (time-reversed?)"),
    "source_std_ratio": (0.5, False, "std ratio to the source {std_ratio:.2f} outside (0.5, 2)"),
    "source_direction": (0.5, False, "RR irregularity did not move toward the target class"),
}


def _nz(v: np.ndarray, default: float) -> np.ndarray:
    return np.where(np.isnan(v), default, v)


def checks(m: dict[str, np.ndarray], is_af: np.ndarray, is_normal: np.ndarray, units: str,
           t: Thresholds, source: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Check values (0/1 floats) from the measurements ``m`` of :func:`features.measure`."""
    c: dict[str, np.ndarray] = {}
    c["noise"] = m["hf_fraction"] <= t.max_hf_fraction
    c["clipping"] = m["flat_top_fraction"] <= t.max_flat_top_fraction
    if units == "zscore":
        lo, hi = t.zscore_std_range
        c["amplitude"] = (m["std"] >= lo) & (m["std"] <= hi)
    else:
        lo, hi = t.qrs_amplitude_mv
        amp = m["qrs_amplitude_mv"]
        c["amplitude"] = (_nz(amp, 0.0) >= lo) & (_nz(amp, np.inf) <= hi)
    c["beats"] = m["n_beats"] >= t.min_beats
    hr = m["heart_rate"]
    c["heart_rate"] = (_nz(hr, 0) >= t.heart_rate_bpm[0]) & (_nz(hr, np.inf) <= t.heart_rate_bpm[1]) \
        & (_nz(m["rr_max"], np.inf) <= t.max_rr_s)
    w = m["qrs_width_ms"]
    c["qrs_present"] = (_nz(w, 0) >= t.qrs_width_gate_ms[0]) & (_nz(w, np.inf) <= t.qrs_width_gate_ms[1])
    c["beat_consistency"] = _nz(m["beat_corr"], -1) >= t.min_beat_corr
    c["splice"] = _nz(m["jump_ratio"], 1.0) <= t.max_jump_ratio
    irr = _nz(m["nrmssd"], 0.0)
    pc = _nz(m["p_coherence"], 0.0)
    af_contra = (irr < t.af_min_nrmssd) & (pc > t.af_max_p_coherence)
    normal_contra = (irr > t.normal_max_nrmssd) & (pc < t.normal_min_p_coherence)
    c["rhythm_matches_label"] = ~((is_af & af_contra) | (is_normal & normal_contra))
    tol = t.qrs_width_tolerance_ms
    c["qrs_width"] = (_nz(w, 0) >= t.qrs_width_ms[0] - tol) & (_nz(w, np.inf) <= t.qrs_width_ms[1])
    c["wave_order"] = _nz(m["t_minus_p"], 0.0) >= t.min_t_minus_p
    if source is not None:
        ratio = m["std_ratio"]
        c["source_std_ratio"] = (ratio > t.std_ratio_range[0]) & (ratio < t.std_ratio_range[1])
        new, old = m["nrmssd"], source["nrmssd"]
        toward = np.where(is_af, new > t.af_irregularity_gain * old,
                          np.where(is_normal, new < t.normal_irregularity_gain * old, True))
        c["source_direction"] = toward & np.isfinite(new) & np.isfinite(old)
    return {k: v.astype(np.float64) for k, v in c.items()}


def verdict(c: dict[str, np.ndarray], t: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    """(score in [0, 1], accept) from check values."""
    names = list(c)
    w = np.array([CHECKS[k][0] for k in names])
    vals = np.stack([c[k] for k in names], axis=1)
    score = vals @ w / w.sum()
    gates = [k for k in names if CHECKS[k][1]]
    passed = np.all(np.stack([c[k] for k in gates], axis=1) >= 1.0, axis=1)
    return score, passed & (score >= t.accept_min_score)


def reasons(c: dict[str, np.ndarray], m: dict[str, Any], t: Thresholds, n: int, units: str = "mV") -> list[list[str]]:
    """Per-sample failure reasons, built per failing check (not per sample)."""
    out: list[list[str]] = [[] for _ in range(n)]
    fmt = {"lo": t.qrs_amplitude_mv[0], "hi": t.qrs_amplitude_mv[1], "min_beats": t.min_beats,
           "hr_lo": t.heart_rate_bpm[0], "hr_hi": t.heart_rate_bpm[1], "w_lo": t.qrs_width_ms[0],
           "w_hi": t.qrs_width_ms[1]}
    for name, v in c.items():
        template = CHECKS[name][2]
        if name == "amplitude" and units == "zscore":
            template = "std {std:.2f} outside " + f"{t.zscore_std_range[0]:g}-{t.zscore_std_range[1]:g}" + " for z-scored data"
        tag = "" if CHECKS[name][1] else " (soft)"
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f and f not in fmt]
        for i in np.flatnonzero(v < 1.0):
            vals = {f: float(m[f][i]) for f in fields if f in m}
            try:
                out[i].append(template.format(**vals, **fmt) + tag)
            except (KeyError, ValueError):
                out[i].append(name + " failed" + tag)
    return out
