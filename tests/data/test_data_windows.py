"""The first deliverable: cinc2017_windows and demo_windows on the real CinC 2017 files."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.data import cinc2017_windows, demo_windows
from augframe.data.demo import demo_provenance
from augframe.errors import DataError


@pytest.fixture(scope="module")
def small(cinc2017_dir):
    return cinc2017_windows(cinc2017_dir, limit_per_class=6, normalise=None, seed=1)


def test_cinc2017_windows_shape_labels_ids(small, cinc2017_dir):
    b = small
    assert b.signals.dtype == np.float32 and b.signals.shape[1:] == (1, 2500)
    assert b.fs == 250.0 and b.leads == ("I",) and b.class_names == ("N", "A")
    assert set(np.unique(b.labels)) == {0, 1}
    assert len(set(b.meta["record"])) == 12
    for i, rid in zip(b.ids, b.meta["record"]):
        assert i.startswith(f"{rid}:w")
    # labels agree with REFERENCE.csv
    ref = dict(line.strip().split(",") for line in open(cinc2017_dir / "REFERENCE.csv") if line.strip())
    for rid, lab in zip(b.meta["record"], b.labels):
        assert ref[rid] == b.class_names[lab]
    # mV-scale ECG after the 0.5 Hz high-pass: near-zero mean, plausible amplitude
    assert abs(float(b.signals.mean())) < 0.05
    assert 0.02 < float(b.signals.std()) < 2.0


def test_cinc2017_windows_normalisations(cinc2017_dir):
    z = cinc2017_windows(cinc2017_dir, limit_per_class=3, normalise="zscore")
    assert np.allclose(z.signals.mean(-1), 0, atol=1e-4) and np.allclose(z.signals.std(-1), 1, atol=1e-3)
    m = cinc2017_windows(cinc2017_dir, limit_per_class=3, normalise="minmax")
    assert m.signals.min() == pytest.approx(-1.5) and m.signals.max() == pytest.approx(1.5)
    assert z.units == "zscore" and m.units == "minmax"


def test_cinc2017_windows_seeded_selection(cinc2017_dir):
    a = cinc2017_windows(cinc2017_dir, limit_per_class=2, seed=3, classes=("A",))
    b = cinc2017_windows(cinc2017_dir, limit_per_class=2, seed=3, classes=("A",))
    c = cinc2017_windows(cinc2017_dir, limit_per_class=2, seed=4, classes=("A",))
    assert a.ids == b.ids and np.array_equal(a.signals, b.signals)
    assert set(a.meta["record"]) != set(c.meta["record"])
    assert (a.labels == 0).all() and a.class_names == ("A",)


def test_cinc2017_windows_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        cinc2017_windows(tmp_path / "nope")


def test_demo_windows():
    d = demo_windows()
    assert d.signals.shape[1:] == (1, 2500) and d.fs == 250.0 and d.class_names == ("N", "A")
    counts = np.bincount(d.labels, minlength=2)
    assert counts.min() >= 100 and len(d) <= 1000
    assert np.allclose(d.signals.std(-1), 1, atol=1e-3)
    raw = demo_windows(normalise=None, classes=("A",))
    assert (raw.labels == 0).all() and len(raw) == counts[1]
    assert 0.02 < float(raw.signals.std()) < 2.0
    assert demo_provenance()["seed"] == 2017


def test_demo_matches_a_fresh_build(cinc2017_dir):
    """The shipped demo equals a rebuild from the real files (int16 microvolt rounding aside)."""
    raw = demo_windows(normalise=None)
    rid = str(raw.meta["record"][0])
    from augframe.data.batches import windows_from_source
    from augframe.data.cinc2017 import CinC2017Source
    from augframe.data.preprocess import PreprocessConfig

    src = CinC2017Source(cinc2017_dir, record_ids=[rid])
    fresh, _ = windows_from_source(src, PreprocessConfig(leads="first", max_windows_per_record=1), None)
    assert np.abs(fresh.signals[0] - raw.signals[0]).max() < 1e-3
