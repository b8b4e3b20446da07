"""``rhythm``: does each class of synthetic ECGs have the rhythm of real ECGs of that class?

AF is a rhythm diagnosis (irregular RR, no P waves), so this evaluator looks only at beat timing
and the waves around the beats, with a detector the generator does not use (wfdb XQRS by
default, :mod:`augframe_afib.detectors`). Per target class c, synthetic ECGs labelled c are
compared with the real ECGs of class c (``real`` = the run's held-out test ECGs):

* RR CV, RMSSD and heart rate (:mod:`augframe_afib.rhythm`): medians and the two-sample
  Kolmogorov-Smirnov statistic D and p-value;
* AF call rate: the share of windows whose RR CV exceeds a real-data threshold;
* P-wave presence rate: the share of windows whose P-wave coherence
  (:mod:`augframe_afib.beatwaves`) exceeds a real-data threshold;
* QRS amplitude of each synthetic ECG relative to its source (median R amplitude ratio), when
  sources are given;
* a verdict per class on the RR CV distributions: "yes" when KS D <= ``max_ks_d`` (default 0.15),
  "no" when D is larger and the KS test says the distributions differ (p < 0.05), "undecided"
  when D is larger but not significant, or with fewer than ``min_windows`` (default 20) windows
  of 3+ beats on either side.

Both thresholds are Youden-optimal on the run's training split (``context.train``, real N vs
real A, at most ``max_calibration`` windows) when it holds both classes, else the fixed values
measured the same way on CinC 2017 (:data:`DEFAULT_AF_RR_CV`, :data:`DEFAULT_P_WAVE`).
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import numpy as np
from scipy import stats

from augframe.beats import r_amplitude
from augframe.errors import ValidationError, require_choice
from augframe.protocols import EvalContext, EvaluationResult, Table
from augframe.seeding import Stream, numpy_rng
from augframe.signals import ECGBatch

from augframe_afib.beatwaves import p_wave_coherence
from augframe_afib.detectors import DETECTOR_TEXT, DETECTORS, detect
from augframe_afib.fidelity import FEATURE_TEXT, aligned_sources, median_iqr
from augframe_afib.inputs import check_labelled
from augframe_afib.rhythm import rr_features

MEASURES = ("rr_cv", "rr_rmssd_ms", "heart_rate_bpm")
#: Youden-optimal on CinC 2017 (738 N + 738 A records, 4605 10 s windows at 250 Hz, wfdb XQRS).
DEFAULT_AF_RR_CV = 0.09
DEFAULT_P_WAVE = 2.4
AMP_BAND = (0.8, 1.25)
SIGNIFICANCE = 0.05


@attrs.frozen
class Thresholds:
    """RR CV above which a window is called AF, P-wave coherence above which P waves are present."""

    af_rr_cv: float
    p_wave: float
    basis: str


@attrs.frozen(eq=False)
class _Measured:
    """Per-window rhythm measures of one set."""

    rr: dict[str, np.ndarray]
    p_wave: np.ndarray
    peaks: list[np.ndarray]

    @classmethod
    def of(cls, batch: ECGBatch, detector: str) -> _Measured:
        x = batch.numpy()
        peaks = detect(x, batch.fs, detector)
        return cls(rr_features(peaks, batch.fs), p_wave_coherence(x, peaks, batch.fs), peaks)


def youden_threshold(values: np.ndarray, positive: np.ndarray) -> float | None:
    """The cut maximising sensitivity + specificity for ``values > cut`` meaning ``positive``.

    NaN values are left out; None when either side has no finite value.
    """
    from sklearn.metrics import roc_curve

    ok = np.isfinite(values)
    if not (ok & positive).any() or not (ok & ~positive).any():
        return None
    fpr, tpr, cuts = roc_curve(positive[ok], values[ok])
    best = int(np.argmax(tpr - fpr))
    return float(np.nextafter(cuts[best], -np.inf))  # roc_curve counts values >= cut


def _finite(v: np.ndarray) -> list[float]:
    return v[np.isfinite(v)].tolist()


def _rate(values: np.ndarray, cut: float) -> tuple[float, int]:
    v = values[np.isfinite(values)]
    return (float(np.mean(v > cut)) if len(v) else float("nan")), int(len(v))


class RhythmEvaluator:
    """``rhythm``: per-class RR, AF-call, P-wave and QRS-amplitude comparison of synthetic vs real ECGs."""

    name = "rhythm"

    def __init__(self, detector: str = "xqrs", max_ks_d: float = 0.15, min_windows: int = 20, af_class: str = "A",
                 normal_class: str = "N", af_rr_cv: float | None = None, p_wave_threshold: float | None = None,
                 max_calibration: int = 2000) -> None:
        require_choice("rhythm detector", detector, DETECTORS)
        if not 0 < max_ks_d < 1:
            raise ValidationError(f"rhythm max_ks_d={max_ks_d} must lie in (0, 1)")
        self.detector, self.max_ks_d, self.min_windows = detector, float(max_ks_d), int(min_windows)
        self.af_class, self.normal_class = af_class, normal_class
        self.af_rr_cv, self.p_wave_threshold = af_rr_cv, p_wave_threshold
        self.max_calibration = int(max_calibration)

    @property
    def detector_text(self) -> str:
        return DETECTOR_TEXT[self.detector]

    def evaluate(self, real: ECGBatch, synthetic: ECGBatch, *, sources: ECGBatch | None = None,
                 context: EvalContext = EvalContext()) -> EvaluationResult:
        y_real, y_syn = check_labelled(real, "real"), check_labelled(synthetic, "synthetic")
        if real.class_names != synthetic.class_names:
            raise ValidationError(f"label sets differ: real {real.class_names} vs synthetic {synthetic.class_names}; "
                                  "map the synthetic labels onto the real classes first")
        names = real.class_names or synthetic.class_names or tuple(str(i) for i in range(int(y_syn.max()) + 1))
        t0 = time.perf_counter()
        notes: list[str] = [f"R peaks: {self.detector_text} (independent of the generator-side detector)"]
        mr, ms = _Measured.of(real, self.detector), _Measured.of(synthetic, self.detector)
        thr = self._thresholds(context, names, notes)
        metrics: dict[str, float] = {"threshold.af_rr_cv": thr.af_rr_cv, "threshold.p_wave": thr.p_wave}
        dist_rows, rate_rows, verdict_rows, verdicts, headline = [], [], [], [], []
        dists: dict[str, dict[str, list[float]]] = {k: {} for k in (*MEASURES, "p_wave")}
        for c, cname in enumerate(names):
            r_idx, s_idx = y_real == c, y_syn == c
            if not s_idx.any():
                continue
            for label, m, idx in (("real", mr, r_idx), ("synthetic", ms, s_idx)):
                af, n_af = _rate(m.rr["rr_cv"][idx], thr.af_rr_cv)
                pw, n_pw = _rate(m.p_wave[idx], thr.p_wave)
                metrics[f"{cname}.af_call_rate.{label}"], metrics[f"{cname}.p_wave_rate.{label}"] = af, pw
                rate_rows.append([cname, label, int(idx.sum()), af, n_af, pw, n_pw])
                for k in MEASURES:
                    dists[k][f"{label} {cname}"] = _finite(m.rr[k][idx])
                dists["p_wave"][f"{label} {cname}"] = _finite(m.p_wave[idx])
            if not r_idx.any():
                notes.append(f"no real ECG of class {cname!r} in the test set: its distributions were not compared")
                continue
            for k in MEASURES:
                dist_rows.append(self._compare(cname, k, mr.rr[k][r_idx], ms.rr[k][s_idx], metrics))
            line, status = self._verdict(cname, metrics)
            verdicts.append(line)
            verdict_rows.append([cname, line])
            headline.append({"label": f"Synthetic {cname} rhythm", "value": status, "note": line,
                             "status": {"yes": "good", "no": "bad"}.get(status, "warn")})
        tables = self._tables(dist_rows, rate_rows, verdict_rows, thr)
        self._amplitude(real, synthetic, sources, ms, names, metrics, tables, notes)
        labels = {k: f"{FEATURE_TEXT[k]} ({self.detector_text})" for k in MEASURES}
        labels["p_wave"] = f"P-wave coherence ({self.detector_text})"
        return EvaluationResult(
            name=self.name, metrics=metrics, tables=tables, notes=notes,
            scale=(f"{len(real)} real / {len(synthetic)} synthetic ECGs, {real.n_samples / real.fs:g} s at "
                   f"{real.fs:g} Hz, {self.detector_text}, {time.perf_counter() - t0:.0f} s"),
            details={"title": "Rhythm (RR intervals, P waves)", "section": "rhythm", "verdicts": verdicts,
                     "headline": headline, "detector": self.detector, "thresholds": attrs.asdict(thr),
                     "max_ks_d": self.max_ks_d, "distributions": dists, "distribution_labels": labels,
                     "seed": int(context.seed)},
        )

    # ---- parts -------------------------------------------------------------------------------------
    def _thresholds(self, context: EvalContext, names: tuple[str, ...], notes: list[str]) -> Thresholds:
        af = self.af_rr_cv if self.af_rr_cv is not None else DEFAULT_AF_RR_CV
        pw = self.p_wave_threshold if self.p_wave_threshold is not None else DEFAULT_P_WAVE
        basis = "given or the CinC 2017 defaults (see docs/afib-evaluator.md)"
        train = context.train
        fixed = self.af_rr_cv is not None and self.p_wave_threshold is not None
        usable = (train is not None and train.labels is not None and train.labels.ndim == 1
                  and train.class_names == names and self.af_class in names and self.normal_class in names)
        idx = None
        if not fixed and usable:
            a, n = names.index(self.af_class), names.index(self.normal_class)
            idx = self._calibration_windows(train.labels, a, n, int(context.seed))
        if idx is not None:
            cal = _Measured.of(train.select(idx), self.detector)
            is_af = train.labels[idx] == names.index(self.af_class)
            cut_af, cut_pw = youden_threshold(cal.rr["rr_cv"], is_af), youden_threshold(cal.p_wave, ~is_af)
            if cut_af is not None and cut_pw is not None:
                af = af if self.af_rr_cv is not None else cut_af
                pw = pw if self.p_wave_threshold is not None else cut_pw
                basis = (f"Youden-optimal on {int((~is_af).sum())} real {self.normal_class} and {int(is_af.sum())} "
                         f"real {self.af_class} training windows")
        notes.append(f"thresholds: AF call when RR CV > {af:.3f}; P waves present when P-wave coherence > {pw:.2f} "
                     f"({basis})")
        return Thresholds(af, pw, basis)

    def _calibration_windows(self, labels: np.ndarray, a: int, n: int, seed: int) -> np.ndarray | None:
        rng = numpy_rng(seed, Stream.AFIB_CALIBRATION)
        per_class = self.max_calibration // 2
        picked = []
        for c in (n, a):
            idx = np.flatnonzero(labels == c)
            if len(idx) < self.min_windows:
                return None
            picked.append(np.sort(rng.choice(idx, per_class, replace=False)) if len(idx) > per_class else idx)
        return np.concatenate(picked)

    def _compare(self, cname: str, k: str, a: np.ndarray, b: np.ndarray, metrics: dict) -> list[Any]:
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        d = p = float("nan")
        if len(a) >= 2 and len(b) >= 2:
            ks = stats.ks_2samp(a, b)
            d, p = float(ks.statistic), float(ks.pvalue)
        metrics.update({f"{cname}.{k}.ks_d": d, f"{cname}.{k}.ks_p": p, f"{cname}.{k}.n_real": len(a),
                        f"{cname}.{k}.n_synthetic": len(b),
                        f"{cname}.{k}.real_median": float(np.median(a)) if len(a) else float("nan"),
                        f"{cname}.{k}.synthetic_median": float(np.median(b)) if len(b) else float("nan")})
        return [cname, FEATURE_TEXT[k], median_iqr(a), median_iqr(b), d, p, len(a), len(b)]

    def _verdict(self, cname: str, metrics: dict) -> tuple[str, str]:
        d, p = metrics[f"{cname}.rr_cv.ks_d"], metrics[f"{cname}.rr_cv.ks_p"]
        n_r, n_s = metrics[f"{cname}.rr_cv.n_real"], metrics[f"{cname}.rr_cv.n_synthetic"]
        sizes = f"{n_s} synthetic / {n_r} real windows"
        if min(n_r, n_s) < self.min_windows:
            status, why = "undecided", f"{sizes} with 3+ beats, fewer than {self.min_windows}"
        elif d <= self.max_ks_d:
            status, why = "yes", f"RR CV KS D = {d:.2f} <= {self.max_ks_d:.2f}; {sizes}"
        elif p < SIGNIFICANCE:
            status, why = "no", f"RR CV KS D = {d:.2f} > {self.max_ks_d:.2f}, p = {p:.2g}; {sizes}"
        else:
            status, why = "undecided", (f"RR CV KS D = {d:.2f} > {self.max_ks_d:.2f} but p = {p:.2g}: too few "
                                        f"windows to tell; {sizes}")
        metrics[f"{cname}.rhythm_match"] = {"yes": 1.0, "no": 0.0}.get(status, float("nan"))
        return f"synthetic {cname} rhythm matches real {cname}: {status} ({why}; {self.detector_text})", status

    def _tables(self, dist_rows: list, rate_rows: list, verdict_rows: list, thr: Thresholds) -> dict[str, Table]:
        det = self.detector_text
        return {
            "verdicts": Table(["class", "verdict"], verdict_rows,
                              caption=f"yes: RR CV KS D <= {self.max_ks_d:.2f}; no: D larger with KS p < "
                                      f"{SIGNIFICANCE}; undecided: D larger but not significant, or under "
                                      f"{self.min_windows} windows (R peaks: {det})."),
            "rhythm": Table(["class", "measure", "real median [IQR]", "synthetic median [IQR]", "KS D", "KS p",
                             "real windows", "synthetic windows"], dist_rows,
                            caption=f"Synthetic ECGs labelled c vs real held-out ECGs of class c; windows with fewer "
                                    f"than 3 beats are left out (R peaks: {det})."),
            "rates": Table(["class", "set", "ECGs", "AF call rate", "windows (3+ beats)", "P-wave presence rate",
                            "windows (4+ P segments)"], rate_rows,
                           caption=f"AF call: RR CV > {thr.af_rr_cv:.3f}; P waves present: P-wave coherence > "
                                   f"{thr.p_wave:.2f}; thresholds {thr.basis} (R peaks: {det})."),
        }

    def _amplitude(self, real: ECGBatch, synthetic: ECGBatch, sources: ECGBatch | None, ms: _Measured,
                   names: tuple[str, ...], metrics: dict, tables: dict, notes: list) -> None:
        src = aligned_sources(real, synthetic, sources)
        if src is None:
            notes.append("no sources given (or linked by meta source_id): the QRS amplitude ratio was skipped")
            return
        amp_syn = r_amplitude(synthetic.numpy(), ms.peaks, synthetic.fs)
        amp_src = r_amplitude(src.numpy(), detect(src.numpy(), src.fs, self.detector), src.fs)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(amp_src > 0, amp_syn / amp_src, np.nan)
        rows = []
        for c, cname in enumerate(names):
            r = ratio[synthetic.labels == c]
            r = r[np.isfinite(r)]
            if not len(r):
                continue
            within = float(np.mean((r >= AMP_BAND[0]) & (r <= AMP_BAND[1])))
            metrics[f"{cname}.qrs_amp_ratio.median"] = float(np.median(r))
            metrics[f"{cname}.qrs_amp_ratio.within_band"] = within
            rows.append([cname, len(r), median_iqr(r), within])
        tables["qrs_amplitude"] = Table(
            ["class", "pairs", "synthetic / source R amplitude, median [IQR]", f"share in {AMP_BAND[0]}-{AMP_BAND[1]}"],
            rows, caption=f"Median QRS peak-to-peak amplitude within 60 ms of each beat, synthetic ECG over its source "
                          f"(a rhythm-true transfer keeps the QRS; R peaks: {self.detector_text}).")
