"""Fixtures of the filter tests: the reference validator pairs and a few real CinC 2017 windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from augframe.signals import ECGBatch


@pytest.fixture(scope="session")
def validator_fixture(reference_dir):
    import torch

    pt = torch.load(reference_dir / "plausibility_validator.pt", weights_only=True)
    js = json.loads((reference_dir / "plausibility_validator.json").read_text())
    return {
        "candidates": pt["candidates"].numpy(),
        "sources": pt["sources"].numpy(),
        "target": pt["target_class"].numpy(),
        "original": pt["original_class"].numpy(),
        "pairs": js["pairs"],
    }


@pytest.fixture(scope="session")
def cinc_small(cinc2017_dir) -> ECGBatch:
    """Plain-read mV windows of the first 12 N and 12 A records (fast; the bench uses all)."""
    from augframe_plausibility.realdata import load_cinc_windows

    return load_cinc_windows(cinc2017_dir, max_records=12)


def _batch_of(x: np.ndarray, labels=None, fs: float = 250.0, units: str = "mV") -> ECGBatch:
    return ECGBatch(np.asarray(x, np.float32)[:, None, :], fs, ("I",), labels=labels,
                    class_names=("N", "A") if labels is not None else (), units=units)


@pytest.fixture(scope="session")
def batch_of():
    """Builds a single-lead ECGBatch from [N, samples] (labels index ("N", "A"))."""
    return _batch_of
