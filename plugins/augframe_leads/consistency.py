"""Lead consistency of 12-lead ECGs: Einthoven's and Goldberger's relations as residuals.

The six limb leads span a 2-D space: III = II - I (Einthoven), aVR = -(I + II) / 2,
aVL = I - II / 2, aVF = II - I / 2 (Goldberger); the relations and the residual live in the core
(:mod:`augframe.leads`), so generators that derive leads and this check share one definition. A
recorded 12-lead ECG satisfies them up to quantisation and filtering (PTB-XL records100: at most
about 1 % of the RMS of leads I and II); a generator that produces limb leads independently, swaps
or inverts leads, or scales one of them violates them. The residual of relation r for one ECG is
``rms(lead_r - f_r(I, II)) / rms(I, II)``, unit-free and comparable across amplitudes.
"""

from __future__ import annotations

import attrs
import numpy as np

from augframe.errors import ValidationError
from augframe.leads import RELATIONS as CORE_RELATIONS
from augframe.leads import residuals
from augframe.protocols import FilterResult
from augframe.signals import ECGBatch

_KIND = {"III": "einthoven", "aVR": "goldberger", "aVL": "goldberger", "aVF": "goldberger"}


def _formula(weights: tuple[float, float]) -> str:
    terms = [f"{w:+g}*{lead}".replace("+1*", "+").replace("-1*", "-")
             for w, lead in zip(weights, ("I", "II")) if w]
    return " ".join(terms).lstrip("+").replace(" +", " + ").replace(" -", " - ")


#: check name -> (checked lead, formula in words); weights come from augframe.leads.RELATIONS
RELATIONS: dict[str, tuple[str, str]] = {
    f"{_KIND[lead]}_{lead}": (lead, _formula(w)) for lead, w in CORE_RELATIONS.items()
}
LIMB_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF")
#: RMS of leads I and II (in the batch's units) below which an ECG counts as flat and cannot be judged
FLAT_RMS = 1e-6


@attrs.frozen(eq=False)
class Residuals:
    """Per-sample relative residuals of each checkable relation (NaN where not checkable)."""

    values: dict[str, np.ndarray]
    missing: tuple[str, ...]
    reference_rms: np.ndarray

    def worst(self) -> np.ndarray:
        """Largest residual per sample over the checked relations (NaN if none was checkable)."""
        cols = [v for v in self.values.values() if not np.isnan(v).all()]
        if not cols:
            return np.full(len(self.reference_rms), np.nan)
        return np.max(np.stack(cols), axis=0)


def lead_residuals(batch: ECGBatch) -> Residuals:
    """Relative residual of every relation whose leads the batch has, vectorised over samples."""
    n = len(batch)
    missing = tuple(name for name in LIMB_LEADS if name not in batch.leads)
    values = {rel: np.full(n, np.nan) for rel in RELATIONS}
    if "I" not in batch.leads or "II" not in batch.leads:
        return Residuals(values, missing, np.full(n, np.nan))  # not judged flat: simply not checkable
    x = batch.numpy()
    i, ii = x[:, batch.leads.index("I")], x[:, batch.leads.index("II")]
    ref = np.sqrt((np.mean(np.square(i, dtype=np.float64), axis=-1) + np.mean(np.square(ii, dtype=np.float64), axis=-1)) / 2)
    for lead, value in residuals(batch).items():
        values[f"{_KIND[lead]}_{lead}"] = value
    return Residuals(values, missing, ref)


def relation_score(residual: np.ndarray, threshold: float) -> np.ndarray:
    """Map residuals to (0, 1]: 1 at zero, 0.5 exactly at the threshold, falling off beyond it."""
    return 1.0 / (1.0 + np.square(residual / threshold))


class LeadConsistencyFilter:
    """Filter ``lead-consistency``: rejects 12-lead ECGs whose limb leads break Einthoven/Goldberger.

    Args:
        threshold: largest accepted relative residual (default 0.05 = 5 % of the RMS of I and II;
            real PTB-XL records stay below about 0.01).
        require_all: with True (default) an ECG lacking any of I, II, III, aVR, aVL, aVF is rejected
            with a reason naming the missing leads; with False the relations that can be checked
            are, and an ECG where none can is rejected.
    """

    def __init__(self, threshold: float = 0.05, require_all: bool = True) -> None:
        if not 0 < float(threshold) < 10:
            raise ValidationError(f"lead-consistency threshold={threshold} must be a positive relative residual, "
                                  "e.g. 0.05 (5 % of the RMS of leads I and II)")
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
        flat = res.reference_rms < FLAT_RMS
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
            out.append(f"leads I and II are flat (RMS {res.reference_rms[i]:.2e}); consistency cannot be judged")
            return tuple(out)
        for rel, (lead, formula) in RELATIONS.items():
            v = res.values[rel][i]
            if not np.isnan(v) and v > self.threshold:
                out.append(f"{lead} deviates from {formula} by {100 * v:.1f}% of the RMS of I and II "
                           f"(threshold {100 * self.threshold:.1f}%)")
        return tuple(out)

