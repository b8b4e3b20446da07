"""Lead consistency of 12-lead ECGs: Einthoven's and Goldberger's relations as residuals.

The six limb leads span a 2-D space: III = II - I (Einthoven), aVR = -(I + II) / 2,
aVL = I - II / 2, aVF = II - I / 2 (Goldberger). A recorded 12-lead ECG satisfies them up to
quantisation and filtering (PTB-XL records100: at most about 1 % of the limb-lead RMS); a
generator that produces limb leads independently, swaps or inverts leads, or scales one of them
violates them. The residual of relation r for one ECG is ``rms(lead_r - f_r(I, II)) /
rms(limb leads)``, so it is unit-free and comparable across amplitudes.
"""

from __future__ import annotations

import attrs
import numpy as np

from augframe.errors import ValidationError
from augframe.protocols import FilterResult
from augframe.signals import ECGBatch

#: relation name -> (checked lead, coefficient of I, coefficient of II, formula in words)
RELATIONS: dict[str, tuple[str, float, float, str]] = {
    "einthoven_III": ("III", -1.0, 1.0, "II - I"),
    "goldberger_aVR": ("aVR", -0.5, -0.5, "-(I + II)/2"),
    "goldberger_aVL": ("aVL", 1.0, -0.5, "I - II/2"),
    "goldberger_aVF": ("aVF", -0.5, 1.0, "II - I/2"),
}
LIMB_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF")
#: limb-lead RMS (in the batch's units) below which an ECG counts as flat and cannot be judged
FLAT_RMS = 1e-6


@attrs.frozen(eq=False)
class Residuals:
    """Per-sample relative residuals of each checkable relation (NaN where not checkable)."""

    values: dict[str, np.ndarray]
    missing: tuple[str, ...]
    limb_rms: np.ndarray

    def worst(self) -> np.ndarray:
        """Largest residual per sample over the checked relations (NaN if none was checkable)."""
        cols = [v for v in self.values.values() if not np.isnan(v).all()]
        if not cols:
            return np.full(len(self.limb_rms), np.nan)
        return np.max(np.stack(cols), axis=0)


def lead_residuals(batch: ECGBatch) -> Residuals:
    """Relative residual of every relation whose leads the batch has, vectorised over samples."""
    x = batch.numpy().astype(np.float64, copy=False)
    have = {name: i for i, name in enumerate(batch.leads)}
    missing = tuple(name for name in LIMB_LEADS if name not in have)
    n = len(batch)
    present = [have[name] for name in LIMB_LEADS if name in have]
    limb_rms = np.sqrt(np.mean(np.square(x[:, present]), axis=(1, 2))) if present else np.zeros(n)
    denom = np.maximum(limb_rms, FLAT_RMS)
    values: dict[str, np.ndarray] = {}
    for rel, (lead, c1, c2, _) in RELATIONS.items():
        if lead in have and "I" in have and "II" in have:
            resid = x[:, have[lead]] - (c1 * x[:, have["I"]] + c2 * x[:, have["II"]])
            values[rel] = np.sqrt(np.mean(np.square(resid), axis=1)) / denom
        else:
            values[rel] = np.full(n, np.nan)
    return Residuals(values, missing, limb_rms)


def relation_score(residual: np.ndarray, threshold: float) -> np.ndarray:
    """Map residuals to (0, 1]: 1 at zero, 0.5 exactly at the threshold, falling off beyond it."""
    return 1.0 / (1.0 + np.square(residual / threshold))


class LeadConsistencyFilter:
    """Filter ``lead-consistency``: rejects 12-lead ECGs whose limb leads break Einthoven/Goldberger.

    Args:
        threshold: largest accepted relative residual (default 0.05 = 5 % of the limb-lead RMS;
            real PTB-XL records stay below about 0.01).
        require_all: with True (default) an ECG lacking any of I, II, III, aVR, aVL, aVF is rejected
            with a reason naming the missing leads; with False the relations that can be checked
            are, and an ECG where none can is rejected.
    """

    def __init__(self, threshold: float = 0.05, require_all: bool = True) -> None:
        if not 0 < float(threshold) < 10:
            raise ValidationError(f"lead-consistency threshold={threshold} must be a positive relative residual, "
                                  "e.g. 0.05 (5 % of the limb-lead RMS)")
        self.threshold = float(threshold)
        self.require_all = bool(require_all)

    @property
    def name(self) -> str:
        return "lead-consistency"

    def score(self, candidates: ECGBatch, sources: ECGBatch | None = None) -> FilterResult:
        res = lead_residuals(candidates)
        n = len(candidates)
        checks = {rel: np.where(np.isnan(v), 0.0, relation_score(np.nan_to_num(v), self.threshold))
                  for rel, v in res.values.items()}
        worst = res.worst()
        checkable = ~np.isnan(worst)
        flat = res.limb_rms < FLAT_RMS
        accept = checkable & ~flat & (np.nan_to_num(worst, nan=np.inf) <= self.threshold)
        if self.require_all and res.missing:
            accept[:] = False
        scores = np.where(checkable & ~flat, relation_score(np.nan_to_num(worst), self.threshold), 0.0)
        if self.require_all and res.missing:
            scores[:] = 0.0
        reasons = tuple(self._reasons(i, res, flat[i]) for i in range(n))
        return FilterResult(self.name, scores, accept, checks, reasons)

    def _reasons(self, i: int, res: Residuals, flat: bool) -> tuple[str, ...]:
        out: list[str] = []
        if res.missing:
            verdict = "rejected" if self.require_all or all(np.isnan(v[i]) for v in res.values.values()) else "not checked"
            out.append(f"leads {list(res.missing)} missing ({verdict}): the lead-consistency check needs "
                       f"{list(LIMB_LEADS)}")
        if flat:
            out.append(f"limb leads are flat (RMS {res.limb_rms[i]:.2e}); consistency cannot be judged")
            return tuple(out)
        for rel, (lead, _, _, formula) in RELATIONS.items():
            v = res.values[rel][i]
            if not np.isnan(v) and v > self.threshold:
                out.append(f"{lead} deviates from {formula} by {100 * v:.1f}% of the limb-lead RMS "
                           f"(threshold {100 * self.threshold:.1f}%)")
        return tuple(out)

