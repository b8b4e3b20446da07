"""The "plausibility" filter: does each candidate look like a real ECG of its labelled class?

Two modes share one front door (input guards, lead choice, class mapping, FilterResult):

* ``improved`` (default): zero-phase filters, a batched R-apex detector, QRS width, beat
  consistency, splice and rhythm-versus-label evidence, thresholds in :class:`config.Thresholds`;
* ``faithful``: the DiffStyleTS reference validator's checks and weights exactly (:mod:`faithful`).

Bad input never reaches scipy: rows with NaN/Inf, a flat line (improved), a batch at the wrong
sampling rate or shorter than the minimum get score 0, accept False and a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import numpy as np

from augframe.errors import ValidationError, require_choice
from augframe.protocols import FilterResult
from augframe.signals import ECGBatch
from augframe_plausibility import faithful as fm
from augframe_plausibility import improved as im
from augframe_plausibility.classes import targets
from augframe_plausibility.config import Thresholds
from augframe_plausibility.features import measure

MODES = ("improved", "faithful")
UNITS = ("auto", "mV", "zscore")
_ZSCORE_NAMES = {"zscore", "z-score", "standardised", "standardized"}

_FAITHFUL_CHECKS = {
    "morphology.amplitude_valid": "samples outside [-3, 3]",
    "morphology.r_peaks_detected": "fewer than 3 R peaks",
    "morphology.valid_qrs_complexes": "fewer than 70 % of peaks with |x| > 0.2",
    "morphology.no_extreme_spikes": ">= 1 % of samples are spikes (median + 10 MAD)",
    "physiology.rr_intervals_valid": "an RR interval outside 0.3-2.0 s",
    "physiology.heart_rate_valid": "heart rate outside 30-200 bpm",
    "physiology.rr_cv_valid": "RR coefficient of variation >= 0.6",
    "clinical.rr_direction_correct": "RR variability did not move toward the target class",
    "clinical.good_similarity": "correlation with the source <= 0.6",
    "clinical.std_preserved": "std ratio to the source outside (0.5, 2)",
}


@attrs.frozen(eq=False)
class Report:
    """A filter verdict plus what was measured (``measurements``: per-sample arrays, NaN = not computed)."""

    result: FilterResult
    measurements: Mapping[str, np.ndarray]
    raw: Mapping[str, Any] = attrs.field(factory=dict)

    def details(self, i: int) -> dict[str, Any]:
        """Faithful mode: sample i's checks in the reference's ``details`` layout."""
        if "faithful" not in self.raw:
            raise ValidationError("details() is the reference layout and exists in faithful mode only")
        pos = self.raw["positions"]
        j = int(np.searchsorted(pos, i))
        if j >= len(pos) or pos[j] != i:
            raise ValidationError(f"sample {i} was rejected by the input guard; see result.reasons[{i}]")
        return fm.details_of(self.raw["faithful"], j)


class PlausibilityFilter:
    """Clinical plausibility of candidate ECGs (see module doc). Satisfies ``augframe.protocols.Filter``.

    Args:
        mode: "improved" (default) or "faithful".
        units: how to read amplitudes (improved mode): "auto" takes ``batch.units`` ("mV", or
            "zscore" for per-sample z-scored data); "mV" / "zscore" force it. Other unit names need
            ``mv_per_unit``. Faithful mode reads values as the reference did (its [-1.5, 1.5] scale).
        mv_per_unit: millivolts per signal unit for linearly scaled data (e.g. a global min-max).
        lead: which lead to judge (default "II" if present, else the first lead).
        thresholds: a :class:`Thresholds` or a mapping of fields to override (improved mode).
        class_map: extra class-name -> "af"/"normal"/"other" mappings (see :mod:`classes`).
        workers: threads the batch is split over (numpy/scipy release the GIL); default 1.
        chunk_size: rows per work unit (bounds memory: ~1 MB of beats per 100 rows).
    """

    name = "plausibility"

    def __init__(self, mode: str = "improved", units: str = "auto", mv_per_unit: float | None = None,
                 lead: str | None = None, thresholds: Thresholds | Mapping[str, Any] | None = None,
                 class_map: Mapping[str, str] | None = None, workers: int = 1, chunk_size: int = 1024) -> None:
        self.mode = require_choice("plausibility.mode", mode, MODES)
        self.units = require_choice("plausibility.units", units, UNITS)
        if mv_per_unit is not None and not (np.isfinite(mv_per_unit) and mv_per_unit > 0):
            raise ValidationError(f"plausibility.mv_per_unit={mv_per_unit!r} must be a positive number")
        self.mv_per_unit = mv_per_unit
        self.lead = lead
        if thresholds is None:
            thresholds = Thresholds()
        elif isinstance(thresholds, Mapping):
            unknown = set(thresholds) - {f.name for f in attrs.fields(Thresholds)}
            if unknown:
                raise ValidationError(f"plausibility.thresholds has unknown keys {sorted(unknown)}; see config.Thresholds")
            thresholds = attrs.evolve(Thresholds(), **{k: tuple(v) if isinstance(v, list) else v
                                                      for k, v in thresholds.items()})
        self.thresholds = thresholds
        self.class_map = dict(class_map or {})
        if int(workers) < 1 or int(chunk_size) < 1:
            raise ValidationError("plausibility.workers and chunk_size must be >= 1")
        self.workers = int(workers)
        self.chunk_size = int(chunk_size)

    # ------------------------------------------------------------------------------------------
    def score(self, candidates: ECGBatch, sources: ECGBatch | None = None) -> FilterResult:
        return self.evaluate(candidates, sources).result

    def evaluate(self, candidates: ECGBatch, sources: ECGBatch | None = None) -> Report:
        x = self._lead(candidates)
        n = len(x)
        src = None
        if sources is not None:
            if len(sources) != n:
                raise ValidationError(f"plausibility: {len(sources)} sources for {n} candidates; give one per candidate")
            src = self._lead(sources)
            if src.shape[1] != x.shape[1]:
                raise ValidationError(f"plausibility: sources have {src.shape[1]} samples, candidates {x.shape[1]}")
        is_af, is_normal = targets(candidates.labels, candidates.class_names, self.class_map)
        if candidates.labels is None:
            is_af, is_normal = np.zeros(n, bool), np.zeros(n, bool)
        scale = self._scale(candidates) if self.mode == "improved" else 1.0
        ok, reasons = self._guard(x, candidates.fs, scale)
        pos = np.flatnonzero(ok)
        if self.mode == "faithful":
            return self._faithful(x, src, is_af, is_normal, ok, pos, reasons)
        return self._improved(x * scale if scale not in (0.0, 1.0) else x, src, candidates.fs, is_af, is_normal, ok, pos,
                              reasons, "zscore" if scale == 0.0 else "mV")

    # ------------------------------------------------------------------------------------------
    def _lead(self, batch: ECGBatch) -> np.ndarray:
        if self.lead is not None:
            if self.lead not in batch.leads:
                raise ValidationError(f"plausibility.lead={self.lead!r} is not in the batch leads {list(batch.leads)}")
            k = batch.leads.index(self.lead)
        else:
            k = batch.leads.index("II") if "II" in batch.leads else 0
        return np.asarray(batch.numpy()[:, k, :], dtype=np.float32)

    def _scale(self, batch: ECGBatch) -> float:
        """Multiplier to mV; 0.0 marks z-scored data (no absolute amplitude)."""
        if self.mv_per_unit is not None:
            return float(self.mv_per_unit)
        units = batch.units if self.units == "auto" else self.units
        if units.lower() == "mv":
            return 1.0
        if units.lower() in _ZSCORE_NAMES:
            return 0.0
        raise ValidationError(
            f"plausibility cannot read amplitudes in units {batch.units!r}: pass units='zscore' for per-sample "
            "z-scored data, or mv_per_unit=<mV per unit> for linearly scaled data (e.g. 1/scale of a min-max map)"
        )

    def _guard(self, x: np.ndarray, fs: float, scale: float) -> tuple[np.ndarray, list[list[str]]]:
        n, length = x.shape
        reasons: list[list[str]] = [[] for _ in range(n)]
        ok = np.ones(n, dtype=bool)
        if self.mode == "faithful":
            fs_ok = fs == fm.FAITHFUL.fs
            fs_msg = f"sampling rate {fs:g} Hz; the reference validator is defined at {fm.FAITHFUL.fs:g} Hz only"
            min_len = 2 * fm.FAITHFUL.min_distance
        else:
            lo, hi = self.thresholds.fs_range_hz
            fs_ok = lo <= fs <= hi
            fs_msg = f"sampling rate {fs:g} Hz outside {lo:g}-{hi:g} Hz (resample first)"
            min_len = int(np.ceil(self.thresholds.min_duration_s * fs))
        if not fs_ok:
            ok[:] = False
            for r in reasons:
                r.append(fs_msg)
        if length < min_len:
            ok[:] = False
            for r in reasons:
                r.append(f"too short: {length} samples ({length / fs:.2f} s); need >= {min_len} samples")
        finite = np.isfinite(x).all(axis=1)
        for i in np.flatnonzero(~finite):
            reasons[i].append("contains NaN or Inf")
        ok &= finite
        if self.mode == "improved" and length:
            span = np.ptp(np.where(finite[:, None], x, 0), axis=1).astype(np.float64)
            # mV data: below flat_range_mv; z-scored data (scale 0): no variation at all
            limit = self.thresholds.flat_range_mv / scale if scale > 0 else 1e-6
            flat = finite & (span < limit)
            for i in np.flatnonzero(flat & ok):
                reasons[i].append("flat line (no signal)")
            ok &= ~flat
        return ok, reasons

    def _chunks(self, pos: np.ndarray) -> list[np.ndarray]:
        return [pos[i:i + self.chunk_size] for i in range(0, len(pos), self.chunk_size)]

    def _map(self, fn, pieces: list[Any]) -> list[Any]:
        if self.workers == 1 or len(pieces) < 2:
            return [fn(p) for p in pieces]
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(fn, pieces))

    # --- faithful -------------------------------------------------------------------------------
    def _faithful(self, x, src, is_af, is_normal, ok, pos, reasons) -> Report:
        n = len(x)
        known = is_af | is_normal
        if src is not None:
            src = np.where(np.isfinite(src), src, 0).astype(np.float32)
        chunks = self._chunks(pos)

        def run(idx: np.ndarray) -> dict[str, Any]:
            return fm.run_faithful(x[idx], None if src is None else src[idx], is_af[idx], known[idx])

        parts = self._map(run, chunks)
        raw = _merge_faithful(parts, chunks)
        scores = np.zeros(n)
        accept = np.zeros(n, dtype=bool)
        checks: dict[str, np.ndarray] = {"input_valid": ok.astype(float)}
        if len(pos):
            scores[pos] = raw["score"]
            accept[pos] = raw["valid"]
        for key in _FAITHFUL_CHECKS:
            group, name = key.split(".")
            col = np.zeros(n)
            if group in raw and len(pos):
                col[pos] = raw[group][name]
            checks[key] = col
        for g in ("morphology", "physiology"):
            col = np.zeros(n)
            if len(pos):
                col[pos] = raw[g]["score"]
            checks[f"{g}_score"] = col
        col = np.zeros(n)
        if len(pos):
            col[pos] = raw["clinical_score"]
        checks["clinical_score"] = col
        if src is None:
            for k in [k for k in checks if k.startswith("clinical.")]:
                del checks[k]
        for key, text in _FAITHFUL_CHECKS.items():
            if key not in checks:
                continue
            for i in np.flatnonzero((checks[key] < 1) & ok):
                reasons[i].append(text)
        if src is not None and len(pos):
            missing = ~raw["clinical"]["applicable"]
            for i in pos[missing]:
                reasons[i].append("fewer than 2 R peaks in the candidate or the source: no clinical points")
            for i in pos[~known[pos]]:
                reasons[i].append("target class is neither AF nor normal: no direction points")
        meas = {}
        for key in ("num_r_peaks",):
            col = np.full(n, np.nan)
            col[pos] = raw["morphology"][key] if len(pos) else []
            meas[key] = col
        for key in ("heart_rate", "mean_rr", "rr_cv"):
            col = np.full(n, np.nan)
            if len(pos):
                col[pos] = raw["physiology"][key]
            meas[key] = col
        result = FilterResult(self.name, np.clip(scores, 0, 1), accept, checks, tuple(tuple(r) for r in reasons))
        return Report(result, meas, {"faithful": raw["faithful"], "positions": pos})

    # --- improved -------------------------------------------------------------------------------
    def _improved(self, x, src, fs, is_af, is_normal, ok, pos, reasons, units) -> Report:
        n = len(x)
        t = self.thresholds
        chunks = self._chunks(pos)

        def run(idx: np.ndarray) -> dict[str, np.ndarray]:
            xi = x[idx]
            m = measure(xi, fs)
            m.pop("peaks")
            if units == "zscore" or src is not None:
                std = xi.std(axis=1).astype(np.float64)  # float32, pairwise summation: ~1e-6 relative
                if units == "zscore":
                    m["std"] = std
            if src is not None:
                si = np.asarray(src[idx], dtype=np.float32)
                if not np.isfinite(si).all():
                    si = np.where(np.isfinite(si), si, 0).astype(np.float32)
                sm = _rhythm_only(si, fs)
                m["source_nrmssd"] = sm["nrmssd"]
                with np.errstate(invalid="ignore", divide="ignore"):
                    m["std_ratio"] = std / (si.std(axis=1).astype(np.float64) + 1e-12)
            return m

        parts = self._map(run, chunks)
        meas: dict[str, np.ndarray] = {}
        if parts:
            for k in parts[0]:
                col = np.full(n, np.nan)
                col[pos] = np.concatenate([p[k] for p in parts])
                meas[k] = col
        sub = {k: v[pos] for k, v in meas.items()}
        c_sub = im.checks(sub, is_af[pos], is_normal[pos], units, t,
                          None if src is None else {"nrmssd": sub.get("source_nrmssd", np.full(len(pos), np.nan))}) \
            if len(pos) else {}
        names = [k for k in im.CHECKS if not k.startswith("source_") or src is not None]
        checks = {"input_valid": ok.astype(float)}
        for k in names:
            col = np.zeros(n)
            if len(pos):
                col[pos] = c_sub[k]
            checks[k] = col
        scores = np.zeros(n)
        accept = np.zeros(n, dtype=bool)
        if len(pos):
            s, a = im.verdict(c_sub, t)
            scores[pos], accept[pos] = s, a
            for j, rs in zip(pos, im.reasons(c_sub, sub, t, len(pos), units)):
                reasons[j].extend(rs)
        result = FilterResult(self.name, np.clip(scores, 0, 1), accept, checks, tuple(tuple(r) for r in reasons))
        return Report(result, meas)


def _rhythm_only(x: np.ndarray, fs: float) -> dict[str, np.ndarray]:
    """Measurements of sources that may hold flat rows (those get NaN)."""
    out = {"nrmssd": np.full(len(x), np.nan)}
    live = np.ptp(x, axis=1) > 0
    if live.any():
        out["nrmssd"][live] = measure(x[live], fs, rhythm_only=True)["nrmssd"]
    return out


def _merge_faithful(parts: list[dict[str, Any]], chunks: list[np.ndarray]) -> dict[str, Any]:
    if not parts:
        return {"faithful": None}
    out: dict[str, Any] = {}
    for group in ("morphology", "physiology", "clinical"):
        if group in parts[0]:
            out[group] = {k: np.concatenate([p[group][k] for p in parts]) for k in parts[0][group]}
    for key in ("score", "valid", "clinical_score"):
        out[key] = np.concatenate([p[key] for p in parts])
    from augframe_plausibility.peaks import Peaks
    offs = np.cumsum([0] + [len(c) for c in chunks[:-1]])
    peaks = Peaks(sum(len(c) for c in chunks), np.concatenate([p["peaks"].rows + o for p, o in zip(parts, offs)]),
                  np.concatenate([p["peaks"].cols for p in parts]))
    out["peaks"] = peaks
    merged = {"morphology": out["morphology"], "physiology": out["physiology"], "peaks": peaks}
    if "clinical" in out:
        merged["clinical"] = out["clinical"]
        sp = [p["source_peaks"] for p in parts]
        merged["source_peaks"] = Peaks(peaks.n, np.concatenate([q.rows + o for q, o in zip(sp, offs)]),
                                       np.concatenate([q.cols for q in sp]))
    out["faithful"] = merged
    return out
