"""Filter chains and the live (batch-level) augmentation form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from augframe.errors import PluginError, ValidationError
from augframe.filterchain import ChainLink, FilterChain, chain_summary
from augframe.live import LiveAugmentedLoader, LiveAugmenter
from augframe.testing import make_ecg_batch
from core_toys import AlwaysFilter, AmplitudeFilter, PhaseShiftGenerator

NAMES = ("N", "A")


def test_chain_combines_with_and_and_min():
    cands = make_ecg_batch(6, fs=125.0, seed=1)
    chain = FilterChain([AlwaysFilter(True, 0.8, "a"), ChainLink(AlwaysFilter(True, 0.4, "b"), min_score=0.5)])
    res = chain.score(cands)
    assert not res.accept.any()  # b accepts, but its score is below min_score
    assert np.allclose(res.scores, 0.4)  # the weakest link
    assert res.per_filter_acceptance() == {"a": 1.0, "b": 0.0}
    rec = res.sample_record(2)
    assert rec["filters"]["b"]["reasons"] == ["score 0.400 below min_score 0.5"] and rec["accept"] is False
    assert res.reasons(0) == ["b: score 0.400 below min_score 0.5"]
    single = res.as_filter_result()
    assert set(single.checks) == {"a", "b"} and len(single) == 6
    ok = FilterChain([AlwaysFilter(True, 0.9, "a")]).score(cands)
    assert ok.accept.all() and chain_summary([res, ok])["acceptance"] == 0.5
    empty = FilterChain([]).score(cands)
    assert empty.accept.all() and np.all(empty.scores == 1)


def test_chain_rejects_bad_filters():
    with pytest.raises(PluginError, match="does not satisfy"):
        FilterChain([object()])
    with pytest.raises(ValidationError, match="unique"):
        FilterChain([AlwaysFilter(name="x"), AlwaysFilter(name="x")])

    class Short(AlwaysFilter):
        def score(self, candidates, sources=None):
            return super().score(candidates.select(slice(0, 1)))

    with pytest.raises(PluginError, match="returned 1 results for 4"):
        FilterChain([Short()]).score(make_ecg_batch(4))


def _loader(n=48, batch=16, seed=0):
    b = make_ecg_batch(n, fs=125.0, seconds=2.0, seed=seed)
    ds = TensorDataset(torch.from_numpy(b.numpy()), torch.from_numpy(b.labels))
    return DataLoader(ds, batch_size=batch, shuffle=False)


def _augmenter(fraction=0.5, seed=3, filters=None):
    return LiveAugmenter(PhaseShiftGenerator(scale=0.3), filters if filters is not None else [AmplitudeFilter(1.3)],
                         fraction, seed, fs=125.0, leads=("II",), class_names=NAMES, targets={"N": "A", "A": "N"})


def test_live_batches_replace_accepted_and_keep_rejected():
    loader = LiveAugmentedLoader(_loader(), _augmenter())
    total_syn = cands = accepted = 0
    for (x_in, y_in), out in zip(_loader(), loader):
        x, y, syn = out
        assert x.shape == x_in.shape and y.shape == y_in.shape and syn.dtype == torch.bool
        assert out.requested == 8 and int(syn.sum()) == 8  # round(0.5 * 16), met despite rejections
        assert np.array_equal(syn.nonzero().flatten().numpy(), out.positions)
        assert set(out.positions) <= set(out.tried.tolist())
        assert len(out.tried) == sum(len(c.accept) for c in out.chains)
        assert torch.equal(x[~syn], x_in[~syn])  # originals kept where nothing was accepted
        assert torch.equal(y[~syn], y_in[~syn])
        assert torch.equal(y[syn], 1 - y_in[syn])  # transfer: the synthetic ECG's target class, N <-> A
        assert not torch.allclose(x[syn], x_in[syn])
        total_syn += int(syn.sum())
        cands += len(out.tried)
        accepted += sum(int(c.accept.sum()) for c in out.chains)
    assert total_syn < cands  # the amplitude filter rejected some: extra candidates made up for them
    assert loader.augmenter.stats == {"batches": 3, "requested": 24, "replaced": total_syn, "candidates": cands,
                                      "accepted": accepted}


def test_live_is_a_pure_function_of_seed_epoch_batch():
    a = LiveAugmentedLoader(_loader(), _augmenter())
    b = LiveAugmentedLoader(_loader(), _augmenter())
    first = [tuple(o) for o in a]
    assert all(torch.equal(p, q) for o1, o2 in zip(first, [tuple(o) for o in b]) for p, q in zip(o1, o2))
    a.set_epoch(1)
    second = [tuple(o) for o in a]
    assert not all(torch.equal(o1[2], o2[2]) for o1, o2 in zip(first, second))
    # a candidate's content depends on its position's seed, not on which others were picked
    aug = _augmenter(fraction=1.0, filters=[])
    x, y = next(iter(_loader()))
    full = aug(x, y, batch_index=0)
    assert full.synthetic.all()
    assert aug.batch_seed(0) != aug.batch_seed(1) and aug.batch_seed(0, epoch=1) != aug.batch_seed(0)


def test_live_bad_inputs():
    with pytest.raises(ValidationError, match="fraction=1.5"):
        _augmenter(fraction=1.5)
    with pytest.raises(ValidationError, match="targets"):
        LiveAugmenter(PhaseShiftGenerator(), [], 0.5, fs=125.0, leads=("II",), class_names=NAMES)
    with pytest.raises(ValidationError, match="class 'X'"):
        LiveAugmenter(PhaseShiftGenerator(), [], 0.5, fs=125.0, leads=("II",), class_names=NAMES, targets={"X": "N"})
    with pytest.raises(ValidationError, match="complete"):
        LiveAugmenter(PhaseShiftGenerator(), [], 0.5, fs=125.0, leads=("II",), class_names=NAMES, mode="complete")
    aug = _augmenter()
    with pytest.raises(ValidationError, match="expected \\[4, leads, samples\\]"):
        aug(torch.zeros(4, 250), torch.zeros(4, dtype=torch.long), batch_index=0)


def test_live_share_is_met_when_the_filters_reject_candidates():
    aug = _augmenter(fraction=0.25)
    loader = LiveAugmentedLoader(_loader(n=160, batch=16), aug)
    syn = torch.cat([out.synthetic for out in loader])
    assert abs(float(syn.float().mean()) - 0.25) <= 0.01  # 0.25 asked, 0.25 realised (was 0.20 before)
    assert aug.stats["accepted"] < aug.stats["candidates"]  # the filter did reject: extra candidates made up
    assert aug.stats["requested"] == aug.stats["replaced"] == 40


def test_live_budget_spent_warns_and_keeps_the_batch_real():
    aug = _augmenter(fraction=0.25, filters=[AlwaysFilter(False)])
    x, y = next(iter(_loader()))
    with pytest.warns(RuntimeWarning, match="replaced 0 of the 4 items"):
        out = aug(x, y, batch_index=0)
    assert not out.synthetic.any() and torch.equal(out.x, x) and torch.equal(out.y, y)
    assert aug.stats["candidates"] == 16  # tries (4) x the 4 items asked for
    with pytest.raises(ValidationError, match="tries=0"):
        LiveAugmenter(PhaseShiftGenerator(), [], 0.5, fs=125.0, leads=("II",), class_names=NAMES,
                      targets={"N": "A"}, tries=0)


def test_live_sample_mode_keeps_each_items_class():
    gen = PhaseShiftGenerator()
    b = make_ecg_batch(48, fs=125.0, seconds=2.0, seed=0)
    gen.fit(b)
    aug = LiveAugmenter(gen, [], 0.5, 3, fs=125.0, leads=("II",), class_names=NAMES, mode="sample")
    x, y = next(iter(_loader()))
    out = aug(x, y, batch_index=0)
    assert int(out.synthetic.sum()) == 8 and torch.equal(out.y, y)


class _DictDataset(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"ecg": self.x[i], "label": self.y[i], "record": f"r{i}"}


def test_live_dict_batches_match_tuple_batches():
    b = make_ecg_batch(48, fs=125.0, seconds=2.0, seed=0)
    x, y = torch.from_numpy(b.numpy()), torch.from_numpy(b.labels)
    dicts = LiveAugmentedLoader(DataLoader(_DictDataset(x, y), batch_size=16), _augmenter(), keys=("ecg", "label"))
    tuples = LiveAugmentedLoader(_loader(), _augmenter())
    for d, t in zip(dicts, tuples):
        assert set(d) == {"ecg", "label", "record", "synthetic"} and len(d["record"]) == 16
        assert torch.equal(d["ecg"], t.x) and torch.equal(d["label"], t.y) and torch.equal(d["synthetic"], t.synthetic)
    with pytest.raises(ValidationError, match=r"keys \['ecg', 'label', 'record'\].*keys=\(signal key, label key\)"):
        next(iter(LiveAugmentedLoader(DataLoader(_DictDataset(x, y), batch_size=16), _augmenter())))
