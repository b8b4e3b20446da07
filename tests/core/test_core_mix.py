"""augframe.training_data / load_run_data: a recipe or run folder + the user's data -> the declared training data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import augframe
from augframe import ECGBatch, pipeline
from augframe import recipe as R
from augframe.dataset import AugmentedDataset
from augframe.errors import BankError, RecipeError, ValidationError
from augframe.live import LiveAugmentedLoader
from augframe.mix import excluded_sources
from core_toys import RECIPE, toy_registry


def _text(out, share="0.33", mode="bank"):
    return RECIPE.format(out=str(out).replace("\\", "/"), extra="").replace(
        "[mix]\nsynthetic_share = 0.33", f'[mix]\nsynthetic_share = {share}\nmode = "{mode}"')


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mix") / "run"
    pipeline.run(R.loads(_text(out)), registry=toy_registry(), stages=("fit", "generate"))
    return out


def test_load_run_data_gives_the_windows_the_bank_was_made_against(run_dir):
    data = augframe.load_run_data(run_dir, registry=toy_registry())
    train, test = data
    assert data[0] is train and data[1] is test
    assert len(train) == 30 and len(test) == 10
    x, y = train[0]
    assert x.shape == (1, 500) and x.dtype == np.float32 and y in (0, 1)
    assert not set(train.ids) & set(test.ids)
    rows = augframe.training_data(run_dir, train, registry=toy_registry()).bank.rows()
    assert {r["source_id"] for r in rows} <= set(train.ids)  # the bank's sources are these training windows
    prov = json.loads((run_dir / "run.json").read_text())["provenance"]  # recorded without the report stage too
    assert prov["generators"][0]["samples"] == len(rows)


def test_bank_mode_gives_the_augmented_dataset_at_the_recipe_share(run_dir):
    train, _ = augframe.load_run_data(run_dir, registry=toy_registry())
    ds = augframe.training_data(run_dir, train, registry=toy_registry())
    assert isinstance(ds, AugmentedDataset) and ds.ratio == 0.33 and ds.seed == 7
    assert ds.class_names == tuple(train.class_names) and np.array_equal(ds.labels, train.labels)
    for epoch in range(3):
        ds.set_epoch(epoch)
        assert abs(ds.synthetic_share() - 0.33) <= 0.02
        x, y, syn = next(iter(DataLoader(ds, batch_size=len(ds))))
        assert x.shape == (30, 1, 500) and int(syn.sum()) == int(ds.plan()[0].sum())
        assert torch.equal(y, torch.as_tensor(train.labels))  # a synthetic item has the class it replaces
    same = augframe.training_data(R.load(run_dir / "recipe.toml"), train, registry=toy_registry(), seed=7)
    assert np.array_equal(same.plan(1)[1], ds.plan(1)[1])  # the recipe file and the run folder agree
    other = augframe.training_data(run_dir, train, registry=toy_registry(), seed=8)
    assert not np.array_equal(other.plan(1)[1], ds.plan(1)[1])


def _picked_sources(ds, epochs=6):
    rows = ds.bank.rows()
    out = set()
    for e in range(epochs):
        syn, pick = ds.plan(e)
        out |= {rows[j]["source_id"] for j in pick[syn]}
    return out


def test_sources_of_the_test_split_never_enter_training(run_dir):
    train, test = augframe.load_run_data(run_dir, registry=toy_registry())
    reg = toy_registry()
    bank = augframe.training_data(run_dir, train, registry=reg).bank
    assert excluded_sources(bank, train, test) == set()  # the run's own split: no source is a test window
    two = sorted({r["source_id"] for r in bank.rows()})[:2]
    assert excluded_sources(bank, train, np.asarray(two)) == set(two)  # ids as an array, a list or a set
    everything = _picked_sources(augframe.training_data(run_dir, train, registry=reg, test=[]))
    held = sorted(everything)[:6]  # a user's test split that holds windows the bank was made from
    assert held
    ds = augframe.training_data(run_dir, train, registry=reg, test=held)
    assert not _picked_sources(ds) & set(held)
    # a test ECG with another id but the patient of a training window: that patient's sources are out too
    b = train.batch
    k = b.ids.index(held[0])
    patient = str(b.meta["patient_id"][k])
    same_patient = {i for i, p in zip(b.ids, b.meta["patient_id"]) if str(p) == patient}
    user_test = ECGBatch(b.signals[k:k + 1], b.fs, b.leads, labels=b.labels[k:k + 1], class_names=b.class_names,
                         ids=["elsewhere-1"], meta={"patient_id": np.array([patient], dtype=object)})
    assert excluded_sources(bank, train, user_test) == same_patient & {r["source_id"] for r in bank.rows()}
    assert not _picked_sources(augframe.training_data(run_dir, train, registry=reg, test=user_test)) & same_patient


def test_live_mode_gives_the_live_loader_over_the_users_batches(tmp_path, run_dir):
    text = _text(run_dir, share="0.3", mode="live")
    rec = tmp_path / "live.toml"
    rec.write_text(text)
    train, _ = augframe.load_run_data(run_dir, registry=toy_registry())
    loader = augframe.training_data(rec, DataLoader(train, batch_size=10), registry=toy_registry())
    assert isinstance(loader, LiveAugmentedLoader) and loader.augmenter.fraction == 0.3
    n = 0
    for (x_in, y_in), out in zip(DataLoader(train, batch_size=10), loader):
        x, y, syn = out
        assert out.requested == 3 and int(syn.sum()) == 3  # round(0.3 * 10) per batch
        assert torch.equal(y[syn], 1 - y_in[syn]) and torch.equal(x[~syn], x_in[~syn])
        n += 1
    assert n == 3
    with pytest.raises(ValidationError, match="augments batches"):
        augframe.training_data(rec, train, registry=toy_registry())
    with pytest.raises(ValidationError, match="wraps a dataset"):
        augframe.training_data(run_dir, DataLoader(train, batch_size=10), registry=toy_registry())


def test_bad_runs_are_named(tmp_path, run_dir):
    train, _ = augframe.load_run_data(run_dir, registry=toy_registry())
    with pytest.raises(RecipeError, match="not a run folder"):
        augframe.training_data(tmp_path, train, registry=toy_registry())
    with pytest.raises(BankError, match="has no bank yet"):
        augframe.training_data(R.loads(_text(tmp_path / "fresh")), train, registry=toy_registry())
    changed = R.loads(_text(run_dir).replace("seed = 7", "seed = 8"))
    with pytest.raises(BankError, match="another plan"):
        augframe.training_data(changed, train, registry=toy_registry())
    with pytest.raises(RecipeError, match="mix.mode = 'lve'.*did you mean 'live'"):
        R.loads(_text(tmp_path, mode="lve"))
    with pytest.raises(RecipeError, match="one target per source class"):
        R.loads(_text(tmp_path, mode="live").replace('["N->A", "A->N"]', '["N->A", "N->X"]'))
