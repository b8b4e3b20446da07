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


def gauss(t: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-0.5 * (t / width) ** 2)


def ecg_train(rr: np.ndarray, rng: np.random.Generator, fs: float = 250.0, seconds: float = 10.0,
              p_wave: bool = True, f_amp: float = 0.0) -> np.ndarray:
    """A noisy ECG-like pulse train (mV): Q-R-S, T, optional P 170 ms before R, optional f waves."""
    t = np.arange(int(seconds * fs)) / fs
    beats = 0.35 + np.concatenate([[0.0], np.cumsum(rr)])
    x = np.zeros_like(t)
    for b in beats[beats < seconds - 0.1]:
        d = t - b
        x += -0.1 * gauss(d + 0.025, 0.008) + gauss(d, 0.01) - 0.25 * gauss(d - 0.025, 0.008)
        x += 0.25 * gauss(d - 0.28, 0.04)
        if p_wave:
            x += 0.15 * gauss(d + 0.17, 0.02)
    if f_amp:
        x += f_amp * np.sin(2 * np.pi * rng.uniform(5, 8) * t + rng.uniform(0, 2 * np.pi))
    return x + rng.normal(0, 0.01, len(t))


def trains(n: int, regular: bool, seed: int, fs: float = 250.0) -> np.ndarray:
    """``[n, 1, samples]``: regular sinus-like trains with P waves, or AF-like ones (random RR, f waves)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        rr = np.full(15, rng.uniform(0.7, 0.9)) if regular else rng.uniform(0.4, 1.1, 25)
        out.append(ecg_train(rr, rng, fs, p_wave=regular, f_amp=0.0 if regular else 0.08))
    return np.asarray(out, np.float32)[:, None, :]


@pytest.fixture(scope="session")
def pulse_trains():
    """``pulse_trains(n, regular, seed, fs=250.0)``: ECG-like trains of known rhythm (see :func:`trains`)."""
    return trains
