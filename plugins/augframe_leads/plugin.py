"""augframe plugin: the 12-lead consistency filter and evaluator (``lead-consistency``).

Registered as a filter, so any 12-lead generator's candidates (first- or third-party) are held to
Einthoven's and Goldberger's relations by naming it in a recipe's filter stage.
"""

from __future__ import annotations

import augframe


@augframe.hookimpl
def augframe_register_filters(register: augframe.Register) -> None:
    from augframe_leads.consistency import LeadConsistencyFilter

    register("lead-consistency", LeadConsistencyFilter,
             description="rejects 12-lead ECGs whose limb leads break Einthoven/Goldberger (relative residual)")


@augframe.hookimpl
def augframe_register_evaluators(register: augframe.Register) -> None:
    from augframe_leads.evaluator import LeadConsistencyEvaluator

    register("lead-consistency", LeadConsistencyEvaluator,
             description="Einthoven/Goldberger residual distributions of real vs synthetic 12-lead ECGs")
