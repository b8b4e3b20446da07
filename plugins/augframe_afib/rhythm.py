"""Heart rate and RR-interval irregularity of ECG windows: the afib plugin's one rhythm-feature path.

Beats come from :func:`augframe_afib.detectors.detect` (wfdb XQRS or the band-pass detector);
the features follow the classic RR-based AF detectors (CinC 2017 entries; Lake and Moorman 2011
for COSEn). With RR intervals ``rr`` (s) and successive differences ``d = diff(rr)``:

* ``heart_rate_bpm`` 60 / median RR; ``rr_sdnn_ms`` SD of RR; ``rr_rmssd_ms`` RMS of d;
* ``rr_cv`` SD / mean of RR; ``nrmssd`` RMSSD / mean RR;
* ``pnn50`` share of |d| > 50 ms; ``pnn50_rate`` the same with the 50 ms scaled by mean RR / 800 ms
  (pNN50 at a reference rate of 75 bpm, so fast rhythms are not penalised);
* ``drr10`` share of |d| > 10 % of the median RR; ``drr_median_rel`` median |d| / median RR (robust
  to an isolated ectopic beat, which moves only two differences);
* ``rr_iqr_rel`` interquartile range of RR / median RR; ``rr_out10`` share of RR intervals more
  than 10 % away from the median RR;
* ``drr_entropy`` Shannon entropy of d / mean RR in bins 0.05 wide centred on 0, divided by its
  largest possible value log2(len(d)) (0 = one bin, 1 = all in different bins);
* ``turning_points`` share of RR intervals that are a strict local maximum or minimum
  (about 2/3 for an independent random series);
* ``cosen`` coefficient of sample entropy, SampEn(m=1, r=30 ms) + ln(2r / mean RR), with one
  added to both match counts so it is defined on 10 s windows (SampEn = ln((B + 1) / (A + 1)));
* ``n_beats`` the number of detected beats.

Every feature but ``n_beats`` is NaN for ECGs with fewer than 3 beats (``turning_points`` for
fewer than 4).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from augframe_afib.detectors import detect

RHYTHM_FEATURES = ("heart_rate_bpm", "rr_sdnn_ms", "rr_rmssd_ms", "rr_cv")
RR_FEATURES = ("heart_rate_bpm", "rr_sdnn_ms", "rr_rmssd_ms", "rr_cv", "nrmssd", "pnn50", "pnn50_rate", "drr10",
               "drr_median_rel", "rr_iqr_rel", "rr_out10", "drr_entropy", "turning_points", "cosen", "n_beats")
MIN_BEATS = 3
COSEN_R_S = 0.030
ENTROPY_BIN = 0.05


def drr_entropy(d_rel: np.ndarray) -> float:
    """Normalised Shannon entropy of relative successive RR differences (see the module docstring)."""
    if len(d_rel) < 2:
        return 0.0
    _, counts = np.unique(np.round(d_rel / ENTROPY_BIN).astype(np.int64), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum() / np.log2(len(d_rel)))


def turning_point_ratio(rr: np.ndarray) -> float:
    if len(rr) < 3:
        return float("nan")
    mid, prev, nxt = rr[1:-1], rr[:-2], rr[2:]
    turns = ((mid > prev) & (mid > nxt)) | ((mid < prev) & (mid < nxt))
    return float(turns.mean())


def cosen(rr: np.ndarray, r: float = COSEN_R_S) -> float:
    """Coefficient of sample entropy (m = 1) with +1 match counts; ``rr`` and ``r`` in seconds."""
    x = rr[:-1]
    close = np.abs(x[:, None] - x[None, :]) <= r
    nxt = np.abs(rr[1:, None] - rr[None, 1:]) <= r
    upper = np.triu(np.ones_like(close), 1)
    b = int((close & upper).sum())
    a = int((close & nxt & upper).sum())
    return float(np.log((b + 1) / (a + 1)) + np.log(2 * r / rr.mean()))


def rr_features(peaks: Sequence[np.ndarray], fs: float) -> dict[str, np.ndarray]:
    """Every feature of :data:`RR_FEATURES` for each ECG's beat indices ``peaks[i]`` at ``fs`` Hz."""
    out = {k: np.full(len(peaks), np.nan) for k in RR_FEATURES}
    for i, p in enumerate(peaks):
        out["n_beats"][i] = len(p)
        if len(p) < MIN_BEATS:
            continue
        rr = np.diff(np.asarray(p, dtype=np.float64)) / fs
        d = np.diff(rr)
        mean, med = rr.mean(), np.median(rr)
        sd, rmssd = rr.std(ddof=1), np.sqrt(np.mean(d ** 2))
        out["heart_rate_bpm"][i] = 60.0 / med
        out["rr_sdnn_ms"][i] = 1000.0 * sd
        out["rr_rmssd_ms"][i] = 1000.0 * rmssd
        out["rr_cv"][i] = sd / mean
        out["nrmssd"][i] = rmssd / mean
        out["pnn50"][i] = np.mean(np.abs(d) > 0.050)
        out["pnn50_rate"][i] = np.mean(np.abs(d) > 0.050 * mean / 0.8)
        out["drr10"][i] = np.mean(np.abs(d) > 0.1 * med)
        out["drr_median_rel"][i] = np.median(np.abs(d)) / med
        q1, q3 = np.percentile(rr, [25, 75])
        out["rr_iqr_rel"][i] = (q3 - q1) / med
        out["rr_out10"][i] = np.mean(np.abs(rr - med) > 0.1 * med)
        out["drr_entropy"][i] = drr_entropy(d / mean)
        out["turning_points"][i] = turning_point_ratio(rr)
        out["cosen"][i] = cosen(rr)
    return out


def rhythm_features(x: np.ndarray, fs: float, detector: str = "bandpass") -> dict[str, np.ndarray]:
    """Per-ECG RR features (:func:`rr_features`) of ``x`` ``[N, samples]`` or ``[N, leads, samples]`` (first lead).

    ``detector`` is a method of :func:`augframe_afib.detectors.detect`. ECGs with fewer than 3
    detected beats get NaN.
    """
    return rr_features(detect(x, fs, detector), fs)
