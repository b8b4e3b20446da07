"""Near-copy filter: pruned search equals brute force; copies rejected; inputs and metrics."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.errors import ValidationError
from augframe.plugins import Registry
from augframe.protocols import Filter
from augframe.windows import ArrayWindows
from augframe_plausibility.nearcopy import NearCopyFilter


def _brute(c: np.ndarray, train: np.ndarray, max_shift: int) -> float:
    c = c - c.mean()
    c = c / np.linalg.norm(c)
    best = -1.0
    for t in train:
        t = t - t.mean()
        t = t / np.linalg.norm(t)
        full = np.correlate(t, c, "full")  # index k <-> lag k - (L - 1)
        lags = np.arange(len(full)) - (len(c) - 1)
        best = max(best, full[np.abs(lags) <= max_shift].max())
    return best


@pytest.fixture(scope="module")
def data(cinc_small):
    x = cinc_small.numpy()[:, 0, :]
    rng = np.random.default_rng(0)
    train = x[20:80]
    copies = np.stack([np.roll(train[0], 30), train[5] + 0.02 * rng.standard_normal(x.shape[1]), train[9][::-1] * 1.0])
    cand = np.concatenate([x[:8], copies[:2], copies[2:]]).astype(np.float32)
    return train.astype(np.float32), cand


@pytest.mark.parametrize("max_shift_s", [None, 0.5])
def test_pruned_search_equals_brute_force(data, max_shift_s, batch_of):
    train, cand = data
    f = NearCopyFilter(batch_of(train), threshold=0.6, max_shift_s=max_shift_s)
    rep = f.evaluate(batch_of(cand))
    shift = f.max_shift
    for i in range(len(cand)):
        want = _brute(cand[i].astype(np.float64), train.astype(np.float64), shift)
        if rep.exact[i]:
            assert rep.value[i] == pytest.approx(want, abs=2e-4), i
        else:  # never checked exactly: the bound it reports must cover the truth and stay under the cut
            assert want <= rep.value[i] + 1e-4 and rep.value[i] <= 0.6
        assert (rep.value[i] > 0.6) == (want > 0.6 + 1e-4) or abs(want - 0.6) < 1e-3


def test_copies_rejected_others_kept(data, batch_of):
    train, cand = data
    rep = NearCopyFilter(batch_of(train), threshold=0.9).evaluate(batch_of(cand))
    assert not rep.result.accept[8] and not rep.result.accept[9]
    assert rep.train_index[8] == 0 and rep.lag[8] in (30, -30)
    assert "near copy" in rep.result.reasons[8][0]
    assert rep.result.accept[10]  # time-reversed is not a copy


def test_inputs_metrics_and_bad_input(data, tmp_path, cinc_small, batch_of):
    train, cand = data
    np.save(tmp_path / "train.npy", train)
    by_path = NearCopyFilter(tmp_path / "train.npy", train_fs=250.0).score(batch_of(cand))
    by_windows = NearCopyFilter(ArrayWindows(batch_of(train))).score(batch_of(cand))
    assert (by_path.accept == by_windows.accept).all()
    l2 = NearCopyFilter(batch_of(train), metric="l2", threshold=0.2).evaluate(batch_of(cand))
    assert not l2.result.accept[9] and l2.result.accept[:8].all() and l2.value[9] < 0.2
    b = batch_of(cand.copy())
    b.signals[0, 0, 3] = np.nan
    res = NearCopyFilter(batch_of(train)).score(b)
    assert res.scores[0] == 0 and not res.accept[0] and "NaN" in res.reasons[0][0]
    wrong = NearCopyFilter(batch_of(train)).score(batch_of(cand[:, ::2], fs=125.0))
    assert (wrong.scores == 0).all() and "250" in wrong.reasons[0][0]


def test_against_all_guards_windows_outside_the_training_split(data, batch_of):
    """A copy of a window the run does not train on (a test window, or a record the generator trained on
    that the split leaves out) passes a gate of the training split and is caught by ``against="all"``."""
    train, cand = data
    others = np.stack([cand[0], cand[1]])  # windows outside ``train`` (cinc_small rows 0 and 1)
    everything = batch_of(np.concatenate([train, others]))
    copy = batch_of((others[1] + 0.01 * np.random.default_rng(3).standard_normal(others.shape[1]))[None]
                    .astype(np.float32))
    assert NearCopyFilter(batch_of(train)).score(copy).accept[0]
    res = NearCopyFilter(batch_of(train), against="all", all_windows=everything).score(copy)
    assert not res.accept[0] and "near copy" in res.reasons[0][0]
    with pytest.raises(ValidationError, match="all_windows"):
        NearCopyFilter(batch_of(train), against="all")
    with pytest.raises(ValidationError, match="against"):
        NearCopyFilter(batch_of(train), against="everything")


def test_registry_builds_both_filters(data, batch_of):
    train, _ = data
    reg = Registry.discover()
    p = reg.create("filter", "plausibility", {})
    n = reg.create("filter", "near-copy", {"train": batch_of(train)})
    assert isinstance(p, Filter) and isinstance(n, Filter)
    assert p.name == "plausibility" and n.name == "near-copy"
