"""Every threshold of the improved validator, in one frozen table, with where each value comes from.

Two kinds of numbers live here: clinical limits (cited) and data-calibrated limits for signal
features that have no clinical norm (a spectral share, a template correlation). The calibrated ones
say so and name the measurement that set them (``python -m bench.validator acceptance``, CinC 2017
N and A windows): they were chosen so that >= 95 % of real windows of each class pass while the
implausible inputs fail.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Thresholds:
    """Thresholds of the improved validator (units in the field names)."""

    # --- input ---------------------------------------------------------------------------------
    fs_range_hz: tuple[float, float] = (100.0, 1000.0)
    min_duration_s: float = 6.0
    flat_range_mv: float = 0.01
    # --- signal quality (gates) ---------------------------------------------------------------
    max_hf_fraction: float = 0.02
    max_flat_top_fraction: float = 0.008
    qrs_amplitude_mv: tuple[float, float] = (0.15, 5.0)
    zscore_std_range: tuple[float, float] = (0.5, 2.0)
    min_beat_corr: float = 0.75
    max_jump_ratio: float = 3.5
    # --- beats and rate (gates) -----------------------------------------------------------------
    min_beats: int = 4
    heart_rate_bpm: tuple[float, float] = (30.0, 220.0)
    max_rr_s: float = 3.0
    qrs_width_gate_ms: tuple[float, float] = (30.0, 200.0)
    # --- soft checks (lower the score, do not reject alone) ---------------------------------------
    qrs_width_ms: tuple[float, float] = (60.0, 120.0)
    qrs_width_tolerance_ms: float = 12.0
    min_t_minus_p: float = -0.3
    # --- rhythm evidence against the labelled class (gates) -----------------------------------
    normal_max_nrmssd: float = 0.20
    normal_min_p_coherence: float = 0.40
    af_min_nrmssd: float = 0.04
    af_max_p_coherence: float = 0.80
    # --- against the source (soft, only when sources are given) -------------------------------
    std_ratio_range: tuple[float, float] = (0.5, 2.0)
    af_irregularity_gain: float = 1.3
    normal_irregularity_gain: float = 0.8
    # --- verdict ---------------------------------------------------------------------------------
    accept_min_score: float = 0.6


#: Where each value comes from (rendered into docs/plausibility.md).
SOURCES: dict[str, str] = {
    "fs_range_hz": "filters are designed per rate; below 100 Hz the 5-40 Hz QRS band is not representable (Nyquist)",
    "min_duration_s": "rhythm evidence needs >= 4 RR intervals; 6 s holds >= 3 beats even at 30 bpm",
    "flat_range_mv": "a window whose whole range is under 10 uV (about an ECG front end's noise floor) carries no ECG",
    "max_hf_fraction": "ECG power lies below 40 Hz (AHA/ACCF/HRS 2007 standardisation, Kligfield et al., "
                       "Circulation 115:1306: monitoring band 0.5-40 Hz); calibrated: real CinC p99 = 0.006, white noise >= 0.65",
    "max_flat_top_fraction": "amplifier/ADC saturation shows as flat runs at the extremes (clipping); calibrated: "
                             "resampled CinC windows 0, the shipped 1-uV-quantised demo windows <= 0.0052, "
                             "windows clipped at 40 % of their extremes >= 0.0096",
    "qrs_amplitude_mv": "low QRS voltage is conventionally < 0.5 mV in every limb lead, so 0.15 mV is far below it; "
                        "Sokolow-Lyon LVH uses 3.5 mV for S(V1)+R(V5) (Sokolow & Lyon, Am Heart J 37:161, 1949): 5 mV "
                        "in one lead is beyond it. Real CinC windows: p1 0.26, p99 2.05 mV (template peak-to-peak)",
    "zscore_std_range": "per-sample z-scored data must have unit std; 0.5-2 is the reference validator's own std-ratio band",
    "min_beat_corr": "beat-to-template correlation as a signal-quality index (Li, Clifford & Mark 2008, Physiol Meas "
                     "29:15, bSQI; Behar et al. 2013); calibrated on CinC 2017: keeps >= 99 % of real windows",
    "max_jump_ratio": "an ECG is band-limited (AHA/ACCF/HRS 2007, Kligfield et al., Circulation 115:1306: diagnostic "
                      "content below 150 Hz; front ends low-pass before sampling), so its slope changes smoothly "
                      "from sample to sample; a join of two recordings steps at one sample (features.jump). "
                      "Calibrated on CinC 2017 data-layer windows (mV): 3.5 ~ p99.5 of real N windows of "
                      "EVEN-numbered records (3.51); held out, on odd records the jump gate alone rejects 0.7 % of "
                      "real N, 0.3 % of A and 97.0 % of spliced windows; 2.5 % of uncleaned plain-read windows",
    "min_beats": "at least 3 RR intervals to speak of a rhythm",
    "heart_rate_bpm": "below 30 bpm only escape rhythms; AF ventricular rates above 220 bpm are exceptional "
                      "(ESC 2020 AF guideline, Hindricks et al., Eur Heart J 42:373)",
    "max_rr_s": "pauses > 3 s are clinically significant (ACC/AHA/HRS 2018 bradycardia guideline, Kusumoto et al.)",
    "qrs_width_gate_ms": "outside 30-200 ms there is no conducted or ventricular QRS (gate); estimator on the median beat",
    "qrs_width_ms": "normal QRS 60-120 ms; >= 120 ms is complete bundle-branch block (Surawicz et al., "
                    "AHA/ACCF/HRS 2009 part III, Circulation 119:e235); soft: wide QRS is real but not typical of N/AF",
    "qrs_width_tolerance_ms": "template width estimate resolution (3 samples at 250 Hz)",
    "min_t_minus_p": "the T wave follows the QRS and outweighs the P wave before it; a time-reversed ECG inverts this "
                     "(soft: flat T waves in lead I make it unreliable as a gate)",
    "normal_max_nrmssd": "RMSSD/mean RR > 0.1 marks AF-like irregularity (Dash et al., Ann Biomed Eng 37:1701, 2009); "
                         "a normal window is rejected only if it is clearly irregular (> 0.2) AND lacks a coherent P wave",
    "normal_min_p_coherence": "AF: no distinct repeating P waves (ESC 2020 AF guideline). P coherence = P-region amplitude "
                              "of the averaged beat / median per-beat P-region amplitude; calibrated on CinC 2017",
    "af_min_nrmssd": "AF is irregularly irregular (ESC 2020); an AF window is rejected only if it is nearly regular "
                     "(< 0.04) AND shows a coherent P wave",
    "af_max_p_coherence": "see normal_min_p_coherence; calibrated on CinC 2017",
    "std_ratio_range": "reference validator (DiffStyleTS plausibility_validator.py): std ratio in (0.5, 2)",
    "af_irregularity_gain": "reference validator: RR-CV x1.3 toward AF (here on RMSSD/mean RR)",
    "normal_irregularity_gain": "reference validator: RR-CV x0.8 toward normal",
    "accept_min_score": "every gate must pass and the weighted score (soft checks included) must reach this",
}
