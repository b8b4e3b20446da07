"""Fixtures of the DiffStyleTS tests: reference parity files, real CinC 2017 windows, a tiny judge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffstylets_helpers import CROP, _JudgePlugin

@pytest.fixture(scope="session")
def ref(reference_dir: Path):
    """Loader of a reference fixture by stem (cached)."""
    cache: dict[str, dict] = {}

    def load(stem: str) -> dict:
        if stem not in cache:
            cache[stem] = torch.load(reference_dir / f"{stem}.pt", weights_only=True)
        return cache[stem]

    return load


@pytest.fixture(scope="session")
def cinc_windows(cinc2017_dir: Path):
    """Real CinC 2017 N/A windows (10 s at 250 Hz, in mV) from 12 records per class."""
    from augframe.data import cinc2017_windows

    return cinc2017_windows(cinc2017_dir, limit_per_class=12, seed=0, normalise=None)


@pytest.fixture(scope="session")
def short_windows(cinc_windows):
    """The same windows cut to their first CROP samples (tiny, fast training)."""
    return cinc_windows.with_signals(np.ascontiguousarray(cinc_windows.signals[:, :, :CROP]))


@pytest.fixture()
def judge_registry():
    from augframe.plugins import Registry

    reg = Registry()
    reg.register_module(_JudgePlugin(), name="tiny-judge-plugin")
    assert not reg.load_errors, reg.load_errors
    return reg


# Stage 1 runs 12 epochs x 17 batches of 4 (204 steps), then one improved stage-2 epoch with the tiny judge.
FIT_TRAIN = dict(stage1_epochs=12, stage2_epochs=1, batch_size=4, lr=2e-3, flip_steps=2, judge="tiny-judge",
                 checkpoint_every=100)


@pytest.fixture(scope="session")
def fitted(short_windows, tmp_path_factory):
    """A tiny improved-mode generator fitted on real windows: (generator, fit result, workdir)."""
    from augframe.plugins import Registry
    from augframe_diffstylets.pipeline import DiffStyleTSGenerator
    from diffstylets_helpers import TINY

    reg = Registry()
    reg.register_module(_JudgePlugin(), name="tiny-judge-plugin")
    gen = DiffStyleTSGenerator(mode="improved", device="cpu", model=TINY, train=FIT_TRAIN,
                               sampler=dict(steps=4, rhythm="source"), registry=reg, bank_per_class=8)
    # 1 s windows carry no rhythm to transplant: re-timing is tested on 10 s windows (test_diffstylets_rhythm.py)
    workdir = tmp_path_factory.mktemp("fit")
    # oneDNN's per-call overhead dominates 8-channel convolutions; the native kernels are ~30 % faster here
    with torch.backends.mkldnn.flags(enabled=False):
        result = gen.fit(short_windows, seed=3, workdir=workdir)
    return gen, result, workdir
