"""Registers the "rhythm-transplant" generator (entry point ``rhythm``)."""

from __future__ import annotations


import augframe
from augframe.plugins import lazy


@augframe.hookimpl
def augframe_register_generators(register: augframe.Register) -> None:
    register("rhythm-transplant", lazy("augframe_rhythm.generator.RhythmTransplantGenerator"),
             description="re-times each source's beats to a real target-class rhythm, QRS kept; no diffusion "
                         "(the rhythm-only baseline); params checkpoint, per_class, pre_s, post_s, max_st_s")
