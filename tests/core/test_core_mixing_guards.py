"""AugmentedDataset refuses mixes that would train on wrong data, and says when epochs do not advance."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from augframe.bank import Bank
from augframe.dataset import AugmentedDataset
from augframe.errors import BankError
from augframe.signals import ECGBatch


def _bank(path, units="mV"):
    x = np.random.default_rng(0).standard_normal((6, 1, 16)).astype(np.float32)
    with Bank.create(path, fs=100.0, leads=["II"], samples_per_window=16, class_names=["N", "A"], units=units) as bank:
        bank.append(ECGBatch(x, 100.0, labels=[0, 1] * 3, class_names=["N", "A"], units=units),
                    [{"key": f"k{i}", "source_id": f"rec{i}"} for i in range(6)])
    return Bank.open(path)


def _base(n=20, units="mV"):
    x = np.zeros((n, 1, 16), np.float32)
    return ECGBatch(x, 100.0, labels=[0, 1] * (n // 2), class_names=["N", "A"], units=units)


def test_units_must_match(tmp_path):
    with pytest.raises(BankError, match="units 'minmax'"):
        AugmentedDataset(_base(units="minmax"), _bank(tmp_path / "b"), 0.5)


def test_an_ecgbatch_split_is_a_valid_base(tmp_path):
    ds = AugmentedDataset(_base(), _bank(tmp_path / "b"), 0.5)
    items = ds.__getitems__(list(range(len(ds))))
    assert len(items) == 20 and sum(bool(it.synthetic) for it in items) == 10
    ds.set_epoch(1)
    assert ds[0].signal.shape == (1, 16)


def test_serving_a_second_epoch_without_set_epoch_warns_once(tmp_path):
    ds = AugmentedDataset(_base(), _bank(tmp_path / "b"), 0.5)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(3):
            ds.__getitems__(list(range(len(ds))))
    assert sum("set_epoch" in str(w.message) for w in seen) == 1
    ds2 = AugmentedDataset(_base(), _bank(tmp_path / "c"), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for e in range(3):
            ds2.set_epoch(e)
            [ds2[i] for i in range(len(ds2))]


def test_exclude_sources_keeps_test_records_out(tmp_path):
    bank = _bank(tmp_path / "b")
    ds = AugmentedDataset(_base(), bank, 0.5, exclude_sources=["rec0", "rec1", "rec2", "rec3"])
    picked = {int(j) for e in range(5) for j in ds.plan(e)[1] if j >= 0}
    assert picked == {4, 5}  # only samples made from rec4 / rec5


def test_a_permutation_test_without_permutations_is_refused():
    from augframe.errors import ValidationError
    from augframe_afib.similarity import mmd_rbf

    a = np.random.default_rng(0).standard_normal((8, 3))
    with pytest.raises(ValidationError, match="n_perm=0"):
        mmd_rbf(a, a + 1, seed=0, n_perm=0)
    assert 0 < mmd_rbf(a, a + 1, seed=0, n_perm=5)["mmd_p"] <= 1
