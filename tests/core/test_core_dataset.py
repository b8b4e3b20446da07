"""AugmentedDataset: exact share, kept class balance, pure function of (seed, epoch, i), workers 0 vs 2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from augframe import ECGBatch
from augframe.bank import Bank
from augframe.dataset import AugmentedDataset, AugmentedItem
from augframe.errors import BankError, ValidationError
from augframe.windows import ArrayWindows

NAMES = ("N", "A")


def _base(n=400, samples=32, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(np.int64)  # imbalanced, like N vs AF
    x = rng.standard_normal((n, 1, samples)).astype(np.float32)
    return ArrayWindows(ECGBatch(x, 125.0, ("II",), labels=labels, class_names=NAMES))


def _bank(path, per_class=(40, 25), samples=32, names=NAMES):
    bank = Bank.create(path, fs=125.0, leads=("II",), samples_per_window=samples, class_names=names)
    labels = np.repeat(np.arange(len(per_class)), per_class)
    x = (1000 + np.arange(len(labels), dtype=np.float32))[:, None, None] * np.ones((1, 1, samples), np.float32)
    bank.append(ECGBatch(x, 125.0, ("II",), labels=labels, class_names=names),
                [{"key": f"s{i}"} for i in range(len(labels))])
    bank.close()
    return Bank.open(path)


def _epoch(ds, epoch, workers):
    ds.set_epoch(epoch)
    loader = DataLoader(ds, batch_size=32, shuffle=False, num_workers=workers)
    xs, ys, fs = zip(*[(x, y, f) for x, y, f in loader])
    return torch.cat(xs), torch.cat(ys), torch.cat(fs)


def test_share_is_exact_and_class_balance_kept(tmp_path):
    base = _base()
    ds = AugmentedDataset(base, _bank(tmp_path / "b"), ratio=0.33, seed=3)
    for epoch in range(3):
        syn, pick = ds.plan(epoch)
        assert abs(syn.mean() - 0.33) <= 0.02  # the tolerance; it is exact per class
        for c in (0, 1):
            members = base.labels == c
            assert syn[members].sum() == round(0.33 * members.sum())
        picked_labels = ds.bank.labels[pick[syn]]
        assert np.array_equal(picked_labels, base.labels[syn])  # same class as the item it replaces
    labels = [ds[i][1] for i in range(len(ds))]
    assert np.array_equal(labels, base.labels)
    assert not np.array_equal(ds.plan(0)[0], ds.plan(1)[0])  # a new mix every epoch


def test_items_are_a_pure_function_of_seed_epoch_index(tmp_path):
    base, bank = _base(), _bank(tmp_path / "b")
    a = AugmentedDataset(base, bank, 0.25, seed=11)
    b = AugmentedDataset(base, bank, 0.25, seed=11)
    b.set_epoch(5)
    b.plan()  # b has computed another epoch's plan first: must not matter
    for i in (0, 7, 123, 399):
        for epoch in (0, 5):
            xa, ya, fa = a[(epoch, i)]
            b.set_epoch(epoch)
            xb, yb, fb = b[i]
            assert np.array_equal(xa, xb) and ya == yb and fa == fb
    c = AugmentedDataset(base, bank, 0.25, seed=12)
    assert not np.array_equal(a.plan(0)[0], c.plan(0)[0])


def test_same_sequence_for_num_workers_0_and_2(tmp_path):
    ds = AugmentedDataset(_base(), _bank(tmp_path / "b"), 0.33, seed=5)
    for epoch in (0, 1):
        x0, y0, f0 = _epoch(ds, epoch, 0)
        x2, y2, f2 = _epoch(ds, epoch, 2)
        assert torch.equal(x0, x2) and torch.equal(y0, y2) and torch.equal(f0, f2)
        items = [ds[(epoch, i)] for i in range(len(ds))]  # the per-item path gives the same sequence
        assert torch.equal(x0, torch.stack([torch.as_tensor(it.signal) for it in items]))
        assert y0.tolist() == [it.label for it in items] and f0.tolist() == [it.synthetic for it in items]
        assert f0.dtype == torch.bool and abs(f0.float().mean().item() - 0.33) <= 0.02
        assert torch.all(x0[f0][:, 0, 0] >= 1000)  # synthetic items come from the bank
        assert torch.all(x0[~f0][:, 0, 0].abs() < 100)


def test_zero_ratio_is_the_base(tmp_path):
    base = _base(50)
    ds = AugmentedDataset(base, _bank(tmp_path / "b"), 0.0)
    x, y, f = ds[3]
    assert np.array_equal(x, base[3][0]) and y == base[3][1] and f is False


def test_classes_are_matched_by_name(tmp_path):
    base = _base()
    bank = _bank(tmp_path / "b", per_class=(10, 10), names=("A", "N"))  # other label order
    ds = AugmentedDataset(base, bank, 0.3, seed=1)
    syn, pick = ds.plan(0)
    assert [bank.class_names[c] for c in bank.labels[pick[syn]]] == [NAMES[c] for c in base.labels[syn]]


def test_bad_inputs_raise(tmp_path):
    base = _base()
    with pytest.raises(ValidationError, match="ratio=1.5"):
        AugmentedDataset(base, _bank(tmp_path / "a"), 1.5)
    one_class = _bank(tmp_path / "b", per_class=(10,), names=("N",))
    with pytest.raises(BankError, match="no sample of class 'A'"):
        AugmentedDataset(base, one_class, 0.3)
    ds = AugmentedDataset(base, one_class, 0.3, missing_classes="real")
    syn, _ = ds.plan(0)
    assert not syn[base.labels == 1].any() and syn[base.labels == 0].mean() == pytest.approx(0.3, abs=0.01)
    other = Bank.create(tmp_path / "c", fs=250.0, leads=("II",), samples_per_window=32, class_names=NAMES)
    with pytest.raises(BankError, match="fs=125.0 but the bank holds fs=250.0"):
        AugmentedDataset(base, other, 0.3)

    class NoLabels(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return np.zeros((1, 32), np.float32), 0

    with pytest.raises(ValidationError, match="base.labels"):
        AugmentedDataset(NoLabels(), _bank(tmp_path / "d"), 0.3)


def test_batched_fetch_equals_per_item_fetch(tmp_path):
    base, bank = _base(), _bank(tmp_path / "b")
    ds = AugmentedDataset(base, bank, 0.33, seed=2)
    idx = [5, 399, 0, 17, 17, -1, 250, 3]
    for epoch in (0, 3):
        ds.set_epoch(epoch)
        batch = ds.__getitems__(idx)
        assert len(batch) == len(idx) and any(it.synthetic for it in batch) and not all(it.synthetic for it in batch)
        for i, got in zip(idx, batch):
            want = ds[i]
            assert type(got) is AugmentedItem and type(want) is AugmentedItem
            assert np.array_equal(got.signal, want.signal) and got.signal.dtype == np.float32
            assert got.label == want.label and type(got.label) is int and got.synthetic is want.synthetic
    ds.set_epoch(0)
    pairs = [(3, 17), (0, 17), (3, 250)]  # (epoch, i) from an epoch-aware sampler, epochs mixed
    for pair, got in zip(pairs, ds.__getitems__(pairs)):
        want = ds[pair]
        assert np.array_equal(got.signal, want.signal) and got[1:] == want[1:]
    assert ds.__getitems__([]) == []
    with pytest.raises(IndexError, match="400"):
        ds.__getitems__([0, 400])
    with pytest.raises(IndexError, match="-401"):
        ds.__getitems__([(0, 1), (0, -401)])


def test_plan_matches_its_per_item_definition(tmp_path):
    """The vectorised plan equals the pick defined per position: pool[hash(seed, epoch, i) % len(pool)]."""
    from augframe.seeding import derive_seeds

    base, bank = _base(), _bank(tmp_path / "b")
    ds = AugmentedDataset(base, bank, 0.4, seed=9)
    for epoch in (0, 7):
        syn, pick = ds.plan(epoch)
        epoch_seed = int(derive_seeds(9 ^ 0x5EED, 1, offset=epoch)[0])
        for i in np.flatnonzero(syn)[:40].tolist():
            pool = np.flatnonzero(bank.labels == base.labels[i])
            h = int(derive_seeds(epoch_seed, 1, offset=i)[0])  # this position's hash, computed alone
            assert pick[i] == pool[h % len(pool)]
        assert np.all(pick[~syn] == -1)


def test_workers_inherit_the_epoch_plan(tmp_path):
    ds = AugmentedDataset(_base(), _bank(tmp_path / "b"), 0.33, seed=5)
    ds.set_epoch(4)
    seen = []

    def check(_):
        info = torch.utils.data.get_worker_info()
        if info.dataset._plan_epoch != 4:  # computed in the parent by set_epoch, not again per worker
            raise AssertionError("worker has no plan for epoch 4")

    loader = DataLoader(ds, batch_size=64, num_workers=2, worker_init_fn=check)
    for batch in loader:
        seen.append(batch)
    assert isinstance(seen[0], AugmentedItem) and sum(len(b.label) for b in seen) == len(ds)


def test_a_batch_crosses_processes_as_two_tensors(tmp_path):
    import pickle
    from multiprocessing.reduction import ForkingPickler

    from torch.utils.data import default_collate

    from augframe.dataset import _unpack_batch

    ds = AugmentedDataset(_base(), _bank(tmp_path / "b"), 0.33, seed=5)
    batch = default_collate(ds.__getitems__(list(range(64))))
    assert isinstance(batch, AugmentedItem) and batch.synthetic.dtype == torch.bool
    rebuild, args = batch.__reduce__()
    assert rebuild is _unpack_batch and len(args) == 2 and all(isinstance(a, torch.Tensor) for a in args)
    back = pickle.loads(ForkingPickler.dumps(batch))  # what a DataLoader worker sends
    assert isinstance(back, AugmentedItem)
    for a, b in zip(back, batch):
        assert a.dtype == b.dtype and torch.equal(a, b)
    item = ds[0]  # a single (numpy, int, bool) item pickles as itself
    again = pickle.loads(pickle.dumps(item))
    assert np.array_equal(again.signal, item.signal) and again[1:] == item[1:]


def test_base_batched_fetch_is_used(tmp_path):
    class Batched(ArrayWindows):
        calls = 0

        def __getitems__(self, idx):
            Batched.calls += 1
            return [self[i] for i in idx]

    b = _base()
    base = Batched(b.batch)
    ds = AugmentedDataset(base, _bank(tmp_path / "b"), 0.33, seed=1)
    got = ds.__getitems__(list(range(0, 400, 7)))
    assert Batched.calls == 1
    ref = AugmentedDataset(b, _bank(tmp_path / "c"), 0.33, seed=1)
    for x, y in zip(got, ref.__getitems__(list(range(0, 400, 7)))):
        assert np.array_equal(x.signal, y.signal) and x[1:] == y[1:]
