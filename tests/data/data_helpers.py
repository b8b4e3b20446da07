"""Helpers of the data tests (a uniquely named module: test folders have no __init__.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Real CinC 2017 records used across the tests: 3 N then 3 A (ids from REFERENCE.csv).
CINC_N = ("A00001", "A00002", "A00003")
CINC_A = ("A00004", "A00005", "A00009")


def write_wfdb(folder: Path, name: str, signal_mv: np.ndarray, fs: float, leads: list[str]) -> None:
    """Write a WFDB record (format 16) of signal [samples, leads] in mV."""
    import wfdb

    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(leads), sig_name=leads, p_signal=signal_mv,
                fmt=["16"] * len(leads), adc_gain=[1000.0] * len(leads), baseline=[0] * len(leads),
                write_dir=str(folder))


def synthetic_ecg(seconds: float, fs: float, leads: int = 1, hr: float = 70.0, seed: int = 0) -> np.ndarray:
    """A crude ECG-like trace [samples, leads] in mV: narrow Gaussian R waves plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    beats = np.arange(0.3, seconds, 60.0 / hr)
    x = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in beats) + 0.02 * rng.standard_normal(len(t))
    return np.stack([x * (0.8 + 0.1 * i) for i in range(leads)], axis=1)
