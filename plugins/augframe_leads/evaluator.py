"""Evaluator ``lead-consistency``: Einthoven/Goldberger residual distributions, real vs synthetic."""

from __future__ import annotations

import numpy as np

from augframe.protocols import EvalContext, EvaluationResult, Table
from augframe.signals import ECGBatch

from augframe_leads.consistency import RELATIONS, lead_residuals

QUANTILES = (0.5, 0.95, 1.0)


class LeadConsistencyEvaluator:
    """Median / 95th percentile / maximum relative residual per relation, and the share within ``threshold``."""

    def __init__(self, threshold: float = 0.05) -> None:
        self.threshold = float(threshold)

    @property
    def name(self) -> str:
        return "lead-consistency"

    def evaluate(self, real: ECGBatch, synthetic: ECGBatch, *, sources: ECGBatch | None = None,
                 context: EvalContext = EvalContext()) -> EvaluationResult:
        metrics: dict[str, float] = {}
        rows = []
        notes = []
        for which, batch in (("real", real), ("synthetic", synthetic)):
            res = lead_residuals(batch)
            if res.missing:
                notes.append(f"{which} data lacks leads {list(res.missing)}; those relations are not measured")
            worst = res.worst()
            checked = worst[~np.isnan(worst)]
            if len(checked):
                metrics[f"{which}_within_threshold"] = float(np.mean(checked <= self.threshold))
                metrics[f"{which}_worst_median"] = float(np.median(checked))
            for rel, values in res.values.items():
                v = values[~np.isnan(values)]
                if not len(v):
                    continue
                q = np.quantile(v, QUANTILES)
                metrics[f"{which}_{rel}_median"] = float(q[0])
                rows.append((which, rel, RELATIONS[rel][1], len(v), *(round(float(x), 5) for x in q)))
        table = Table(("data", "relation", "formula", "n", "median", "p95", "max"), rows,
                      caption="relative residual = rms(lead - formula) / rms(leads I and II)")
        return EvaluationResult(self.name, metrics, {"residuals": table}, notes=notes,
                                details={"threshold": self.threshold})
