"""Registers the "diffecg" generator; the model code is imported only when one is built."""

from __future__ import annotations

from typing import Any

import augframe


def make_diffecg(**params: Any) -> Any:
    """Build a DiffECG generator (see docs/diffecg.md for parameters)."""
    from augframe_diffecg.generator import DiffECGGenerator

    return DiffECGGenerator(**params)


@augframe.hookimpl
def augframe_register_generators(register) -> None:
    register("diffecg", make_diffecg,
             description="DiffECG: one conditional DDPM for generation, imputation and forecasting (mask-driven)")
