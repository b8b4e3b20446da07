"""Memory-mapped window cache: round trip, reuse, hash invalidation, bad input, no partial caches."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from augframe.data.batches import windows_from_source
from augframe.data.cache import WindowCache, build_cache, fit_normaliser
from augframe.data.cinc2017 import CinC2017Source
from augframe.data.preprocess import PreprocessConfig
from augframe.data.splits import split_cache
from augframe.data.wfdb_source import WFDBSource
from augframe.errors import DataError
from augframe.windows import WindowDataset

from data_helpers import CINC_A, CINC_N, synthetic_ecg, write_wfdb

CFG = PreprocessConfig(leads="first")


def _entries(root: Path) -> list[str]:
    return sorted(os.listdir(root)) if root.exists() else []


def test_cache_round_trip_matches_in_memory_windows(cinc_copy, tmp_path):
    src = CinC2017Source(cinc_copy, classes=("N", "A"))
    cache = build_cache(src, CFG, classes=("N", "A"), root=tmp_path / "c")
    batch, _ = windows_from_source(CinC2017Source(cinc_copy, classes=("N", "A")), CFG, ("N", "A"))
    assert isinstance(cache, WindowDataset) and len(cache) == len(batch)
    assert cache.ids == batch.ids and cache.fs == 250.0 and cache.leads == ("I",)
    np.testing.assert_array_equal(cache.labels, batch.labels)
    np.testing.assert_array_equal(np.asarray(cache.signals), batch.signals)
    x, y = cache[len(cache) - 1]
    assert x.dtype == np.float32 and x.shape == (1, 2500) and y == int(batch.labels[-1])
    assert set(cache.record_ids) == set(CINC_N + CINC_A) and (cache.patient_ids == cache.record_ids).all()
    items = cache.__getitems__([4, 1, 4])  # batched read (DataLoader) = item reads
    for (xa, ya), i in zip(items, [4, 1, 4]):
        xb, yb = cache[i]
        np.testing.assert_array_equal(xa, xb)
        assert ya == yb
    reopened = WindowCache(cache.path)
    assert reopened.key == cache.key and reopened.config == CFG
    assert reopened.report.windows_kept == len(cache)
    np.testing.assert_array_equal(reopened.batch([3, 0]).signals, batch.signals[[3, 0]])


def test_cache_reuse_and_hash_invalidation(cinc_copy, tmp_path):
    root = tmp_path / "c"
    a = build_cache(CinC2017Source(cinc_copy), CFG, classes=("N", "A"), root=root)
    again = build_cache(CinC2017Source(cinc_copy), CFG, classes=("N", "A"), root=root)
    assert again.path == a.path and _entries(root) == [a.path.name]
    other_cfg = build_cache(CinC2017Source(cinc_copy), PreprocessConfig(leads="first", cleaning="bandpass"),
                            classes=("N", "A"), root=root)
    assert other_cfg.key != a.key
    # a changed signal file changes the key
    mat = cinc_copy / "A00001.mat"
    data = bytearray(mat.read_bytes())
    data[-2:] = b"\x00\x01"
    mat.write_bytes(bytes(data))
    changed = build_cache(CinC2017Source(cinc_copy), CFG, classes=("N", "A"), root=root)
    assert changed.key not in (a.key, other_cfg.key)
    # a changed label file too
    (cinc_copy / "REFERENCE.csv").write_text((cinc_copy / "REFERENCE.csv").read_text().replace("A00001,N", "A00001,A"))
    relabelled = build_cache(CinC2017Source(cinc_copy), CFG, classes=("N", "A"), root=root)
    assert relabelled.key != changed.key
    assert relabelled.labels[list(relabelled.record_ids).index("A00001")] == 1
    assert not [e for e in _entries(root) if e.endswith(".partial")]



def test_a_copied_tree_keeps_the_content_identity_a_run_is_bound_to(cinc_copy, tmp_path):
    """New mtimes (a copied or re-materialised tree) rebuild the cache, but the windows' identity, which
    a run's bank is bound to, stays; a changed recording changes it; the in-memory path agrees."""
    from augframe.data.prepare import prepare_recipe_data

    def run_data(cache: bool):
        return prepare_recipe_data(CinC2017Source(cinc_copy), classes=("N", "A"), seed=0,
                                   preprocessing={"leads": ["I"], "cache": cache, "cache_dir": str(tmp_path / "c")},
                                   split={"k": 2, "fold": 0, "by": "record"})

    before = run_data(True)
    key_before = build_cache(CinC2017Source(cinc_copy), PreprocessConfig(leads=["I"]), classes=("N", "A"),
                             root=tmp_path / "c").key
    for f in cinc_copy.iterdir():
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    after = run_data(True)
    key_after = build_cache(CinC2017Source(cinc_copy), PreprocessConfig(leads=["I"]), classes=("N", "A"),
                            root=tmp_path / "c").key
    assert key_after != key_before and after.fingerprint == before.fingerprint
    assert run_data(False).fingerprint == before.fingerprint
    mat = cinc_copy / "A00001.mat"
    data = bytearray(mat.read_bytes())
    data[-2:] = b"\x00\x01"
    mat.write_bytes(bytes(data))
    assert run_data(True).fingerprint != before.fingerprint

@pytest.fixture()
def bad_tree(cinc_copy) -> Path:
    """The six CinC records plus one of each kind of bad input."""
    root = cinc_copy
    data = (root / "A00002.mat").read_bytes()
    (root / "A00002.mat").write_bytes(data[: len(data) // 3])  # truncated
    (root / "A00003.hea").write_text("garbage\n")  # unreadable header
    write_wfdb(root, "B00001", synthetic_ecg(5, 300, seed=1), 300, ["ECG"])  # too short
    write_wfdb(root, "B00002", synthetic_ecg(30, 128, seed=2), 128, ["ECG"])  # unexpected fs
    write_wfdb(root, "B00003", synthetic_ecg(30, 300, seed=3), 300, ["ECG"])  # not in REFERENCE.csv
    write_wfdb(root, "B00004", synthetic_ecg(30, 300, leads=2, seed=4), 300, ["V1", "V2"])  # lacks lead I
    flat = np.zeros((int(30 * 300), 1))
    write_wfdb(root, "B00005", flat, 300, ["ECG"])  # all windows fail the quality gate
    ref = (root / "REFERENCE.csv").read_text() + "B00001,N\r\nB00002,N\r\nB00004,A\r\nB00005,N\r\nA09999,A\r\n"
    (root / "REFERENCE.csv").write_text(ref)
    return root


def test_bad_input_is_collected_and_reported(bad_tree, tmp_path):
    cfg = PreprocessConfig(leads="I", allowed_fs=(300.0,))
    src = WFDBSource(bad_tree, labels="REFERENCE.csv", single_lead_as="I", classes=("N", "A"))
    cache = build_cache(src, cfg, classes=("N", "A"), root=tmp_path / "c")
    report = cache.report
    assert set(cache.record_ids) == {"A00001", "A00004", "A00005", "A00009"}
    assert report.records("truncated") == ["A00002"]
    assert report.records("unreadable") == ["A00003"]
    assert report.records("too-short") == ["B00001"]
    assert report.records("unexpected-fs") == ["B00002"]
    assert report.records("missing-label") == ["B00003"]
    assert report.records("missing-lead") == ["B00004"]
    assert report.records("low-quality") == ["B00005"]
    summary = report.summary()
    assert "truncated: 1 record(s) [A00002]" in summary and "too-short" in summary
    # CinC's own reader reports the label-file entry without files
    cinc = CinC2017Source(bad_tree, classes=("N", "A"))
    list(cinc.records())
    assert "A09999" in {p.record for p in cinc.problems if p.kind == "missing-file"}


def test_strict_build_fails_and_leaves_nothing(bad_tree, tmp_path):
    root = tmp_path / "c"
    src = WFDBSource(bad_tree, labels="REFERENCE.csv", single_lead_as="I", classes=("N", "A"))
    with pytest.raises(DataError, match="strict") as err:
        build_cache(src, PreprocessConfig(leads="I"), classes=("N", "A"), root=root, strict=True)
    assert "A00002" in str(err.value)
    assert _entries(root) == []
    only_bad = WFDBSource(bad_tree, records_list=["A00002", "B00001"], labels="REFERENCE.csv", single_lead_as="I")
    with pytest.raises(DataError, match="no usable windows"):
        build_cache(only_bad, PreprocessConfig(leads="I"), classes=("N", "A"), root=root)
    assert _entries(root) == []


def test_workers_give_the_same_cache(cinc2017_dir, tmp_path):
    src = CinC2017Source(cinc2017_dir, classes=("N", "A"), limit_per_class=6, seed=5)
    one = build_cache(src, CFG, classes=("N", "A"), root=tmp_path / "a", workers=1)
    two = build_cache(src, CFG, classes=("N", "A"), root=tmp_path / "b", workers=2)
    assert one.key == two.key and one.ids == two.ids
    np.testing.assert_array_equal(np.asarray(one.signals), np.asarray(two.signals))


def test_split_views_normalise_on_train_only_and_feed_a_dataloader(cinc2017_dir, tmp_path):
    import torch
    from torch.utils.data import DataLoader

    src = CinC2017Source(cinc2017_dir, classes=("N", "A"), limit_per_class=10, seed=2)
    cache = build_cache(src, CFG, classes=("N", "A"), root=tmp_path / "c")
    split = split_cache(cache, k=5, seed=0)
    fold = split.fold(0, cache.patient_ids)
    norm = fit_normaliser(cache, fold.train, "minmax")
    train_vals = np.asarray(cache.signals)[fold.train]
    assert norm.params["global_min"] == pytest.approx(float(train_vals.min()))
    assert norm.params["global_max"] == pytest.approx(float(train_vals.max()))
    view = cache.view(fold.train, norm)
    assert isinstance(view, WindowDataset) and len(view) == len(fold.train)
    xs, ys = [], []
    for x, y in DataLoader(view, batch_size=8, num_workers=2, shuffle=False):
        xs.append(x)
        ys.append(y)
    x = torch.cat(xs)
    assert x.shape == (len(fold.train), 1, 2500) and x.dtype == torch.float32
    assert float(x.min()) == pytest.approx(-1.5, abs=1e-5) and float(x.max()) == pytest.approx(1.5, abs=1e-5)
    np.testing.assert_array_equal(torch.cat(ys).numpy(), cache.labels[fold.train])
    b = view.batch()
    assert b.units == "minmax" and np.allclose(b.signals, x.numpy(), atol=1e-6)
    np.testing.assert_allclose(norm.inverse(b.signals), train_vals, atol=1e-5)


def test_ptbxl_twelve_lead_cache_groups_by_patient(ptbxl_dir, tmp_path):
    from augframe.data.ptbxl import PTBXLSource
    from augframe.signals import STANDARD_LEADS

    src = PTBXLSource(ptbxl_dir, resolution=100, classes=("N", "A"), limit_per_class=3, seed=0)
    cfg = PreprocessConfig(leads=list(STANDARD_LEADS), cleaning="bandpass")
    cache = build_cache(src, cfg, classes=("N", "A"), root=tmp_path / "c")
    assert np.asarray(cache.signals).shape == (6, 12, 2500) and cache.leads == STANDARD_LEADS
    assert sorted(np.bincount(cache.labels).tolist()) == [3, 3]
    assert all(p.isdigit() for p in cache.patient_ids) and (cache.patient_ids != cache.record_ids).all()
    assert {m["strat_fold"] for m in cache.record_meta.values()} <= {str(i) for i in range(1, 11)}
    only_ii = build_cache(src, PreprocessConfig(leads="II", cleaning="bandpass"), classes=("N", "A"),
                          root=tmp_path / "c")
    assert only_ii.leads == ("II",) and only_ii.ids == cache.ids
    np.testing.assert_array_equal(np.asarray(only_ii.signals)[:, 0], np.asarray(cache.signals)[:, 1])


def test_workers_with_a_source_that_cannot_plan(tmp_path):
    """Array sources have no plan/read: records are read here and preprocessed in the pool, same result."""
    from augframe.data.arrays import ArraySource

    x = np.stack([synthetic_ecg(12, 250, seed=i)[:, 0] for i in range(70)]).astype(np.float32)
    np.savez(tmp_path / "x.npz", X=x, y=np.arange(70) % 2)
    src = ArraySource(tmp_path / "x.npz", fs=250, leads=("II",))
    one = build_cache(src, PreprocessConfig(), classes=("N", "A"), root=tmp_path / "a")
    two = build_cache(src, PreprocessConfig(), classes=("N", "A"), root=tmp_path / "b", workers=2)
    assert len(one) == 70 and one.ids == two.ids
    np.testing.assert_array_equal(np.asarray(one.signals), np.asarray(two.signals))
