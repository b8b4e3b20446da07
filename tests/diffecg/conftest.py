"""DiffECG test fixtures: a few real CinC 2017 windows and beats, and a tiny trained generator."""

from __future__ import annotations

import numpy as np
import pytest

TINY = dict(width=8, mults=(1, 2), blocks=1, n_fft=32, hop=8, steps=4, batch_size=64)


@pytest.fixture(scope="session")
def tiny() -> dict:
    """Tiny-width architecture and sampling settings for CPU tests."""
    return dict(TINY)


@pytest.fixture(scope="session")
def cinc_windows(cinc2017_dir):
    from augframe.data import cinc2017_windows

    return cinc2017_windows(cinc2017_dir, classes=("N", "A"), limit_per_class=4, normalise=None, seed=0)


@pytest.fixture(scope="session")
def cinc_beats(cinc_windows):
    from augframe_diffecg.beats import cut_beats

    return cut_beats(cinc_windows)


@pytest.fixture(scope="session")
def tiny_beat_generator(cinc_beats):
    """A barely trained generator on real beats: enough for shapes, determinism and round trips."""
    from augframe_diffecg.generator import DiffECGGenerator

    gen = DiffECGGenerator(**TINY, train_steps=20, train_batch_size=8)
    gen.fit(cinc_beats, seed=0)
    return gen


@pytest.fixture(scope="session")
def tiny_window_generator(cinc_windows):
    """Tiny generator on 2-lead 10 s windows (lead II = a shifted copy of the CinC lead)."""
    from augframe.signals import ECGBatch
    from augframe_diffecg.generator import DiffECGGenerator

    x = cinc_windows.numpy()
    two = np.concatenate([x, np.roll(x, 7, axis=-1) * 0.8], axis=1)
    batch = ECGBatch(two, cinc_windows.fs, ("I", "II"), labels=cinc_windows.labels,
                     class_names=cinc_windows.class_names, ids=cinc_windows.ids)
    gen = DiffECGGenerator(**TINY, train_steps=3, train_batch_size=4, crop=256)
    gen.fit(batch, seed=1)
    return gen, batch
