"""Registers the DiffStyleTS generator; torch and the model load only when one is built."""

from __future__ import annotations


import augframe
from augframe.plugins import lazy


@augframe.hookimpl
def augframe_register_generators(register: augframe.Register) -> None:
    register("diffstylets", lazy("augframe_diffstylets.pipeline.DiffStyleTSGenerator"),
             description="DiffStyleTS: content/style encoders + FiLM UNet, SDEdit class transfer with CFG "
                         "(modes faithful | improved; parameters: docs/diffstylets.md)")
