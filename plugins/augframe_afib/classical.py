"""Condition D's classical augmentation: torch-ecg augmenters (baseline wander, masking, stretch/compress).

torch-ecg draws all its randomness from one module-level numpy Generator
(``torch_ecg.cfg.DEFAULTS.RNG``). To make every batch replayable, each call re-seeds that
Generator from the batch's seed and restores the previous one afterwards, so nothing else in the
process sees a changed stream.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import torch

from augframe.seeding import Stream, numpy_rng

DEFAULT_AUGMENTERS = ("baseline_wander", "random_masking", "stretch_compress")


class ClassicalAugment:
    """``augment(x, y, seed) -> x`` with torch-ecg's AugmenterManager; ``fs`` is the signals' rate."""

    def __init__(self, fs: float, augmenters: tuple[str, ...] = DEFAULT_AUGMENTERS) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch_ecg.augmenters import AugmenterManager
            from torch_ecg.cfg import CFG
        cfg = CFG(random=False, fs=int(round(fs)), **{name: {} for name in augmenters})
        self.names = tuple(augmenters)
        self.manager = AugmenterManager.from_config(cfg)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
        from torch_ecg.cfg import DEFAULTS

        saved = (DEFAULTS.RNG, DEFAULTS.RNG_sample, DEFAULTS.RNG_randint)
        rng = numpy_rng(seed, Stream.AFIB_CLASSICAL)
        DEFAULTS.RNG = rng
        DEFAULTS.RNG_sample = partial(rng.choice, replace=False, shuffle=False)
        DEFAULTS.RNG_randint = partial(rng.integers, endpoint=True)
        try:
            out: Any = self.manager(x.clone(), y.float()[:, None])
        finally:
            DEFAULTS.RNG, DEFAULTS.RNG_sample, DEFAULTS.RNG_randint = saved
        return (out[0] if isinstance(out, (tuple, list)) else out).to(x.dtype)
