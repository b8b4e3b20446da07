"""Fixtures for the evaluator tests: small real CinC 2017 windows and a stand-in synthetic set."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.signal import savgol_filter

from augframe.signals import ECGBatch

#: The smallest AFibResLSTM that keeps every stage (one block per ResNet stage, 1/16 of the channels).
TINY = {"width": 0.0625, "depth": [1, 1, 1, 1]}
SHORT = 1000  # samples (4 s at 250 Hz): keeps CPU training in the tests to seconds


@pytest.fixture(scope="session")
def registry():
    from augframe.plugins import Registry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Registry.discover()


@pytest.fixture(scope="session")
def cinc_windows(cinc2017_dir) -> ECGBatch:
    """Real CinC 2017 N and A windows in mV (10 s at 250 Hz), 14 records per class."""
    from augframe.data import cinc2017_windows

    return cinc2017_windows(cinc2017_dir, limit_per_class=14, seed=0, normalise=None)


@pytest.fixture(scope="session")
def cinc_short(cinc_windows) -> ECGBatch:
    """The same windows cut to their first 4 s."""
    return cinc_windows.with_signals(np.ascontiguousarray(cinc_windows.numpy()[:, :, :SHORT]))


def standin_synthetic(real: ECGBatch, n: int, seed: int) -> tuple[ECGBatch, ECGBatch]:
    """(sources, synthetic): a seeded stand-in for a generator's output, linked to its real sources.

    Each synthetic ECG is its source smoothed (Savitzky-Golay 11/3) plus N(0, 0.02 mV) noise, with
    the source's label and ``meta['source_id']``; the evaluators only need such a linked set.
    """
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(real), n, replace=False))
    src = real.select(pick)
    x = savgol_filter(src.numpy(), 11, 3, axis=-1) + rng.normal(0.0, 0.02, src.numpy().shape)
    syn = ECGBatch(x.astype(np.float32), real.fs, real.leads, labels=src.labels, class_names=real.class_names,
                   ids=[f"syn{i}" for i in range(n)], meta={"source_id": np.asarray(src.ids)})
    return src, syn


@pytest.fixture(scope="session")
def tiny() -> dict:
    return dict(TINY)


@pytest.fixture(scope="session")
def standin():
    return standin_synthetic
