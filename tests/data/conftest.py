"""Fixtures of the data tests: small record subsets and hand-made trees with bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from data_helpers import CINC_A, CINC_N


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Caches built without an explicit root go to a temporary folder, never to ~/.cache."""
    monkeypatch.setenv("AUGFRAME_CACHE", str(tmp_path_factory.mktemp("augframe-cache")))


@pytest.fixture()
def cinc_copy(cinc2017_dir, tmp_path) -> Path:
    """A writable CinC 2017 folder with the six records above and their REFERENCE.csv lines."""
    out = tmp_path / "cinc"
    out.mkdir()
    lines = []
    for rid in CINC_N + CINC_A:
        for ext in (".hea", ".mat"):
            shutil.copy(cinc2017_dir / f"{rid}{ext}", out / f"{rid}{ext}")
            (out / f"{rid}{ext}").chmod(0o644)
        lines.append(f"{rid},{'N' if rid in CINC_N else 'A'}\r\n")
    (out / "REFERENCE.csv").write_text("".join(lines), newline="")
    return out
