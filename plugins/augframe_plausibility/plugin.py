"""Registers the "plausibility" and "near-copy" filters (heavy modules load on first use)."""

from __future__ import annotations


import augframe
from augframe.plugins import lazy


@augframe.hookimpl
def augframe_register_filters(register: augframe.Register) -> None:
    register("plausibility", lazy("augframe_plausibility.validator.PlausibilityFilter"),
             description="clinical plausibility of candidate ECGs; mode 'improved' (default) or 'faithful' (DiffStyleTS reference)")
    register("near-copy", lazy("augframe_plausibility.nearcopy.NearCopyFilter"),
             description="rejects candidates whose shift-tolerant max normalised cross-correlation to a training ECG exceeds a threshold")
