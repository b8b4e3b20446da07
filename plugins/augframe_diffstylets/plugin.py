"""Registers the DiffStyleTS generator; torch and the model load only when one is built."""

from __future__ import annotations

from typing import Any

import augframe


def create_generator(mode: str = "improved", checkpoint: str | None = None, device: str = "auto",
                     style_source: str = "self", length_policy: str = "reject", precision: str = "auto",
                     micro_batch: int = 32, bank_per_class: int = 256, model: dict[str, Any] | None = None,
                     sampler: dict[str, Any] | None = None, train: dict[str, Any] | None = None) -> Any:
    """Build a DiffStyleTS generator (parameters: docs/diffstylets.md)."""
    from augframe_diffstylets.generator import DiffStyleTSGenerator

    return DiffStyleTSGenerator(mode=mode, checkpoint=checkpoint, device=device, style_source=style_source,
                                length_policy=length_policy, precision=precision, micro_batch=micro_batch,
                                bank_per_class=bank_per_class, model=model, sampler=sampler, train=train)


@augframe.hookimpl
def augframe_register_generators(register):
    register("diffstylets", create_generator,
             description="DiffStyleTS: content/style encoders + FiLM UNet, SDEdit class transfer with CFG "
                         "(modes faithful | improved)")
