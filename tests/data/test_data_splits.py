"""Patient-wise stratified k-fold splits: no shared patients, balanced labels, disjoint test folds, replay."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.data.splits import Split, make_split
from augframe.errors import DataError, ValidationError


def _data(seed=0, n_patients=120):
    rng = np.random.default_rng(seed)
    patients, labels = [], []
    for p in range(n_patients):
        lab = int(rng.random() < 0.25)  # 25 % AF patients
        for _ in range(rng.integers(1, 6)):  # 1-5 windows each
            patients.append(f"p{p}")
            labels.append(lab)
    return np.array(patients), np.array(labels)


def test_no_patient_in_two_folds_and_test_folds_are_disjoint():
    groups, labels = _data()
    split = make_split(groups, labels, k=5, seed=3)
    tests = []
    for i in range(5):
        f = split.fold(i, groups)
        parts = [set(groups[f.train]), set(groups[f.val]), set(groups[f.test])]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert len(f.train) + len(f.val) + len(f.test) == len(groups)
        tests.append(f.test)
    all_tests = np.concatenate(tests)
    assert len(all_tests) == len(groups) and len(np.unique(all_tests)) == len(groups)


def test_folds_are_stratified():
    groups, labels = _data(seed=1, n_patients=300)
    split = make_split(groups, labels, k=5, seed=0)
    overall = labels.mean()
    folds = split.folds_of(groups)
    for i in range(5):
        assert abs(labels[folds == i].mean() - overall) < 0.05
    counts = split.label_counts
    assert sum(counts["1"]) == int(labels.sum()) and sum(counts["0"]) == int((labels == 0).sum())


def test_seeded_save_load_replay(tmp_path):
    groups, labels = _data(seed=2)
    a = make_split(groups, labels, k=4, seed=7)
    b = make_split(groups, labels, k=4, seed=7)
    c = make_split(groups, labels, k=4, seed=8)
    assert a.group_fold == b.group_fold and a.group_fold != c.group_fold
    loaded = Split.load(a.save(tmp_path / "split.json"))
    assert loaded == a
    for i in range(4):
        np.testing.assert_array_equal(loaded.fold(i, groups).test, a.fold(i, groups).test)
    with pytest.raises(DataError, match="other data"):
        loaded.folds_of(["someone-new"])


def test_bad_arguments():
    groups, labels = _data(seed=3, n_patients=4)
    with pytest.raises(ValidationError, match="k=5"):
        make_split(groups, labels, k=5)
    split = make_split(groups, labels, k=2)
    with pytest.raises(ValidationError, match="fold 2"):
        split.fold(2, groups)


def test_excluded_groups_are_in_no_part_of_any_fold():
    from augframe.data.splits import EXCLUDED, Split

    sp = Split(k=2, seed=0, by="record", group_fold={"a": 0, "b": 1, "c": EXCLUDED, "d": 1})
    groups = np.array(["a", "b", "c", "d", "c", "a"])
    for val in (False, True):
        f = sp.fold(0, groups, val=val)
        used = np.concatenate([f.train, f.val, f.test])
        assert not np.isin([2, 4], used).any()
    f = sp.fold(0, groups, val=False)
    assert f.test.tolist() == [0, 5] and f.train.tolist() == [1, 3] and len(f.val) == 0
