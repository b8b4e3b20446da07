"""Shared test fixtures: paths to the real PhysioNet data beside the checkout, and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUGFRAME_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"
CINC2017 = SHARED / "data" / "cinc2017"
PTBXL500 = SHARED / "data" / "ptbxl500"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not present (set AUGFRAME_SHARED to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _need(REFERENCE)


@pytest.fixture(scope="session")
def cinc2017_dir() -> Path:
    return _need(CINC2017)


@pytest.fixture(scope="session")
def ptbxl_dir() -> Path:
    return _need(PTBXL500)


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    """Intra-op threads for the suite: AUGFRAME_TEST_THREADS, default 1.

    The tests use tiny models, which gain nothing from a second thread, and on a machine shared
    with other jobs OpenMP threads spin-wait for a busy core (6-20x slower measured here).
    """
    import torch

    torch.set_num_threads(int(os.environ.get("AUGFRAME_TEST_THREADS", "1")))
    yield
