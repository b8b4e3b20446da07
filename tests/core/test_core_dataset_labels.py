"""AugmentedDataset exposes labels and class_names, so a class-balancing sampler can be built on it."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from augframe.dataset import AugmentedDataset
from test_core_dataset import NAMES, _base, _bank


def test_labels_and_class_names_feed_a_weighted_sampler(tmp_path):
    base = _base()
    ds = AugmentedDataset(base, _bank(tmp_path / "b"), ratio=0.33, seed=3)
    assert ds.class_names == NAMES and np.array_equal(ds.labels, base.labels)
    for epoch in (0, 1):  # synthetic items keep the replaced item's label: labels hold every epoch
        ds.set_epoch(epoch)
        assert [int(ds[i][1]) for i in range(len(ds))] == ds.labels.tolist()
    ds.labels[0] = 99  # a copy: the dataset's plan is not touched
    assert ds.labels[0] == base.labels[0]
    weights = 1.0 / np.bincount(ds.labels)[ds.labels]
    drawn = ds.labels[list(WeightedRandomSampler(torch.as_tensor(weights), 4000, generator=torch.Generator().manual_seed(0)))]
    assert abs(drawn.mean() - 0.5) < 0.05  # balanced draws from a 30 % minority class
