"""pipeline.run: every stage on toy plugins, exact resume after a crash, sample requests, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from augframe import pipeline
from augframe import recipe as R
from augframe.bank import Bank
from augframe.dataset import AugmentedDataset
from augframe.errors import DataError, RecipeError
from augframe.windows import ArrayWindows
from core_toys import RECIPE, PhaseShiftGenerator, toy_registry


def _recipe(out, extra=""):
    return R.loads(RECIPE.format(out=str(out).replace("\\", "/"), extra=extra))


def _bank_state(path):
    b = Bank.open(path, verify="full")
    order = np.argsort(b.keys)
    return [b.keys[i] for i in order], b.signals(order), [b.rows(i)[0]["seed"] for i in order]


def test_run_writes_every_stage(tmp_path):
    res = pipeline.run(_recipe(tmp_path / "run"), registry=toy_registry())
    out = tmp_path / "run"
    assert (out / "recipe.toml").is_file() and (out / "summary.json").is_file() and (out / "summary.md").is_file()
    assert res.report == out / "report.html" and "moments" in res.report.read_text()
    R.load(out / "recipe.toml")  # the resolved recipe written beside the outputs is itself valid
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 7 and run["data"]["train"] == 30 and run["data"]["test"] == 10
    assert set(run["timings_s"]) == {"data", "fit", "generate", "evaluate", "report"}
    gen = res.generation["per_target"]
    assert set(gen) == {"N->A", "A->N"}
    bank = Bank.open(res.bank_path, verify="full")
    assert len(bank) == sum(s["accepted_total"] for s in gen.values()) > 0
    for s in gen.values():
        assert s["accepted_total"] + s["shortfall"] == s["wanted"]
        assert 0 < s["acceptance"] < 1
    row = bank.rows(0)[0]
    assert {"key", "seed", "source_id", "source_label", "target", "generator", "filters", "score"} <= set(row)
    assert row["filters"]["amplitude"]["accept"] is True
    assert row["generator"] == {"name": "phase-shift", "version": "0.0.1", "checkpoint_sha256": None,
                                "params": {"scale": 0.3, "max_shift": 20}, "trained_against": None}
    ev = json.loads(res.evaluations["moments"].read_text())
    assert ev["metrics"]["n_synthetic"] == len(bank) and "pearson_r_to_source" in ev["metrics"]
    # evaluators get each synthetic ECG's source and patient, so they can keep a patient on one side of a split
    assert ev["metrics"]["n_with_source_id"] == ev["metrics"]["n_with_patient"] == len(bank)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"]["moments"]["scale"].endswith("synthetic")
    page = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in page["results"]] == ["generation", "moments", "provenance"]
    assert len(page["pairs"]) == 6  # 3 source / synthetic pairs per direction
    # the bank feeds training through AugmentedDataset
    data = pipeline.load_data(_recipe(tmp_path / "run"), toy_registry())
    ds = AugmentedDataset(ArrayWindows(data.train), bank, 0.33, seed=7)
    assert abs(ds.synthetic_share(0) - 0.33) <= 0.02


class _Crash(RuntimeError):
    pass


def test_resume_after_crash_equals_uninterrupted_run(tmp_path, monkeypatch):
    clean = pipeline.run(_recipe(tmp_path / "clean"), registry=toy_registry(), stages=("fit", "generate"))
    calls = {"n": 0}
    original = PhaseShiftGenerator.generate

    def crashing(self, request):
        calls["n"] += 1
        if calls["n"] == 4:
            raise _Crash("killed mid-run")
        return original(self, request)

    monkeypatch.setattr(PhaseShiftGenerator, "generate", crashing)
    with pytest.raises(_Crash):
        pipeline.run(_recipe(tmp_path / "resumed"), registry=toy_registry(), stages=("fit", "generate"))
    partial = len(Bank.open(tmp_path / "resumed" / "bank"))
    assert 0 < partial < len(Bank.open(clean.bank_path))
    monkeypatch.setattr(PhaseShiftGenerator, "generate", original)
    again = pipeline.run(_recipe(tmp_path / "resumed"), registry=toy_registry(), stages=("fit", "generate"))
    assert sum(s["accepted_now"] for s in again.generation["per_target"].values()) == \
        len(Bank.open(clean.bank_path)) - partial
    k1, x1, s1 = _bank_state(clean.bank_path)
    k2, x2, s2 = _bank_state(again.bank_path)
    assert k1 == k2 and s1 == s2 and np.array_equal(x1, x2)  # no duplicate, no loss, same samples
    third = pipeline.run(_recipe(tmp_path / "resumed"), registry=toy_registry(), stages=("fit", "generate"))
    assert all(s["accepted_now"] == 0 and s["note"] == "complete in an earlier run"
               for s in third.generation["per_target"].values())


def test_count_limits_and_sample_requests(tmp_path):
    r = _recipe(tmp_path / "c", extra="count = 4")
    res = pipeline.run(r, registry=toy_registry(), stages=("fit", "generate"))
    assert all(s["accepted_total"] == 4 for s in res.generation["per_target"].values())
    text = RECIPE.format(out=str(tmp_path / "s"), extra="").replace(
        'kind = "transfer"\ndirections = ["N->A", "A->N"]', 'kind = "sample"\nlabels = ["A"]\ncount = 5').replace(
        'name = "amplitude"\nparams = { max_ratio = 1.3 }', 'name = "always"')
    res = pipeline.run(R.loads(text), registry=toy_registry())
    bank = Bank.open(res.bank_path)
    assert len(bank) == 5 and set(bank.labels.tolist()) == {bank.class_names.index("A")}
    assert bank.rows(0)[0]["source_id"] is None


def test_same_class_directions_make_each_class_from_every_source_class(tmp_path):
    """'N->N' with 'N->A' and 'A->N', 'A->A': every synthetic class has sources of both classes."""
    r = R.loads(RECIPE.format(out=str(tmp_path / "p"), extra="count = 3").replace(
        'directions = ["N->A", "A->N"]', 'directions = ["N->A", "A->N", "N->N", "A->A"]').replace(
        'name = "amplitude"\nparams = { max_ratio = 1.3 }', 'name = "always"'))
    res = pipeline.run(r, registry=toy_registry(), stages=("fit", "generate"))
    assert sorted(res.generation["per_target"]) == ["A->A", "A->N", "N->A", "N->N"]
    bank = Bank.open(res.bank_path)
    train, _ = pipeline.load_data(r, toy_registry())
    class_of = dict(zip(train.ids, (train.class_names[int(y)] for y in train.labels)))
    rows = bank.rows(np.arange(len(bank)))
    for i, row in enumerate(rows):
        src, dst = row["key"].split(":", 1)[0].split("->")
        assert bank.class_names[int(bank.labels[i])] == dst == row["target"]
        assert class_of[row["source_id"]] == src == row["source_label"]
    assert {row["key"].split(":", 1)[0] for row in rows} == {"N->A", "A->N", "N->N", "A->A"}


def test_bad_data_and_plan_inputs(tmp_path):
    reg = toy_registry()
    r = _recipe(tmp_path / "x")
    with pytest.raises(RecipeError, match="'X' is not in the data's classes"):
        pipeline.run(R.loads(RECIPE.format(out=str(tmp_path / "x"), extra="").replace('"N->A"', '"X->A"')),
                     registry=reg)
    import attrs

    with pytest.raises(RecipeError, match="data.preprocessing.sampling_rate"):
        pipeline.load_data(attrs.evolve(r, data=attrs.evolve(r.data, preprocessing={"sampling_rate": 250})), reg)
    with pytest.raises(DataError, match="yielded no records"):
        pipeline.load_data(attrs.evolve(r, data=attrs.evolve(r.data, params={"n": 0})), reg)


@pytest.mark.parametrize("mask", ['{ task = "forecast", horizon_s = 1.0 }', '{ task = "gap", fraction = 0.3 }',
                                  '{ task = "random_gaps", fraction = 0.25, chunk_s = 0.2 }'])
def test_complete_requests_from_a_recipe(tmp_path, mask):
    text = RECIPE.format(out=str(tmp_path / "c"), extra="").replace(
        'kind = "transfer"\ndirections = ["N->A", "A->N"]',
        f'kind = "complete"\nlabels = ["A"]\ncount = 4\nmask = {mask}').replace(
        'name = "amplitude"\nparams = { max_ratio = 1.3 }', 'name = "always"')
    res = pipeline.run(R.loads(text), registry=toy_registry(), stages=("fit", "generate"))
    (tag, stats), = res.generation["per_target"].items()
    assert tag.startswith("complete-") and stats["accepted_total"] == 4
    bank = Bank.open(res.bank_path)
    data = pipeline.load_data(R.loads(text), toy_registry())
    from augframe.windows import as_windows
    train = as_windows(data.train)
    pos = {k: j for j, k in enumerate(train.ids)}
    for i, row in enumerate(bank.rows()):
        src = train[pos[row["source_id"]]][0]
        known = np.isclose(bank[i][0], src, atol=0, rtol=0)
        assert 0.05 < known.mean() < 0.95  # part kept exactly, part generated
    with pytest.raises(RecipeError, match="horizon_s = 9.0 leaves nothing known"):
        pipeline.run(R.loads(text.replace(mask, '{ task = "forecast", horizon_s = 9.0 }').replace(
            str(tmp_path / "c"), str(tmp_path / "d"))), registry=toy_registry(), stages=("generate",))


def test_filters_that_take_train_get_the_run_training_windows(tmp_path):
    import types

    import augframe
    from augframe import FilterResult

    seen = {}

    class NotInTrain:
        """Rejects candidates identical to a training window (a miniature near-copy gate)."""

        name = "not-in-train"

        def __init__(self, train, all_windows=None):
            seen["train"], seen["all"] = train, all_windows
            self.train = train.numpy() if hasattr(train, "numpy") else np.stack([w for w, _ in train])

        def score(self, candidates, sources=None):
            x = candidates.numpy()
            copy = np.array([np.isclose(self.train, c, atol=1e-6).all(axis=(1, 2)).any() for c in x])
            return FilterResult(self.name, (~copy).astype(float), ~copy)

    mod = types.ModuleType("train_filter_plugin")
    mod.augframe_register_filters = augframe.hookimpl(lambda register: register("not-in-train", NotInTrain))
    reg = toy_registry()
    reg.register_module(mod)
    text = RECIPE.format(out=str(tmp_path / "t"), extra="").replace('name = "amplitude"\nparams = { max_ratio = 1.3 }',
                                                                    'name = "not-in-train"')
    res = pipeline.run(R.loads(text), registry=reg, stages=("fit", "generate"))
    assert len(seen["train"]) == 30  # the recipe's training split, given without any recipe key
    assert len(seen["all"]) == 40  # and every window of the data (the 10 test windows too), for against="all"
    assert sum(s["accepted_total"] for s in res.generation["per_target"].values()) > 0
