"""Registers the "diffecg" generator; the model code is imported only when one is built."""

from __future__ import annotations


import augframe
from augframe.plugins import lazy


@augframe.hookimpl
def augframe_register_generators(register: augframe.Register) -> None:
    register("diffecg", lazy("augframe_diffecg.generator.DiffECGGenerator"),
             description="DiffECG: one conditional DDPM for generation, imputation and forecasting (mask-driven)")
