"""Class-balanced epochs of EpochSampler and the warm-up + cosine learning-rate factor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from augframe.errors import ValidationError
from augframe.training import EpochSampler, warmup_cosine

LABELS = np.array([0] * 45 + [1] * 5 + [2] * 10)  # 75 / 8 / 17 %


def _batches(seed: int, epoch: int, **kw) -> list[list[int]]:
    s = EpochSampler(len(LABELS), 6, seed=seed, labels=LABELS, **kw)
    s.set_epoch(epoch)
    return list(s)


def test_balanced_epochs_give_every_class_the_same_share_of_each_batch():
    batches = _batches(3, 1)
    assert len(batches) == 10
    for b in batches:
        assert sorted(np.bincount(LABELS[b], minlength=3).tolist()) == [2, 2, 2]
    drawn = np.concatenate(batches)
    minority = np.flatnonzero(LABELS == 1)
    assert set(drawn[LABELS[drawn] == 1]) == set(minority)  # every minority member repeats (4 cycles of 5)
    assert len(set(drawn[LABELS[drawn] == 0])) == 20  # the majority gives a subset, no repeats within it


def test_balanced_epochs_are_seeded_and_change_with_epoch_and_seed():
    assert _batches(3, 1) == _batches(3, 1)
    assert _batches(3, 1) != _batches(3, 2) and _batches(3, 1) != _batches(4, 1)
    majority = [set(np.concatenate(_batches(3, e))) & set(range(45)) for e in (1, 2)]
    assert majority[0] != majority[1]  # a fresh majority subset each epoch


def test_balanced_ranks_split_balanced_global_batches():
    whole = _batches(5, 2)
    ranks = []
    for r in range(2):
        s = EpochSampler(len(LABELS), 3, seed=5, labels=LABELS, rank=r, world_size=2)
        s.set_epoch(2)
        ranks.append(list(s))
    for g, a, b in zip(whole, *ranks):
        assert a + b == g
        assert np.bincount(LABELS[a], minlength=3).max() - np.bincount(LABELS[a], minlength=3).min() <= 1


def test_balanced_sampler_refuses_misaligned_labels():
    with pytest.raises(ValidationError, match="one class per sample"):
        EpochSampler(10, 2, labels=np.zeros(9, int))


def test_warmup_cosine_values():
    assert [warmup_cosine(s, 100, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert warmup_cosine(4, 100, 4) == 1.0  # the cosine starts at the top
    assert warmup_cosine(52, 100, 4) == pytest.approx(0.5)  # halfway through the decay
    assert warmup_cosine(28, 100, 4) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert warmup_cosine(100, 100, 4) == 0.0 and warmup_cosine(500, 100, 4) == 0.0
    assert warmup_cosine(100, 100, 0, floor=0.1) == pytest.approx(0.1)
    assert warmup_cosine(0, 100) == 1.0  # no warm-up
    with pytest.raises(ValidationError, match="floor"):
        warmup_cosine(0, 100, 4, floor=1.5)
