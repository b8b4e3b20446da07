"""Registers the "plausibility" and "near-copy" filters (heavy modules load on first use)."""

from __future__ import annotations

from typing import Any

import augframe


def _plausibility(**params: Any) -> Any:
    from augframe_plausibility.validator import PlausibilityFilter

    return PlausibilityFilter(**params)


def _near_copy(**params: Any) -> Any:
    from augframe_plausibility.nearcopy import NearCopyFilter

    return NearCopyFilter(**params)


@augframe.hookimpl
def augframe_register_filters(register: Any) -> None:
    register("plausibility", _plausibility,
             description="clinical plausibility of candidate ECGs; mode 'improved' (default) or 'faithful' (DiffStyleTS reference)")
    register("near-copy", _near_copy,
             description="rejects candidates whose shift-tolerant max normalised cross-correlation to a training ECG exceeds a threshold")
