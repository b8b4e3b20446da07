"""The three-way protocol: planning (grouping, leakage, sizes), bad input, a full tiny run, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from augframe.errors import ValidationError
from augframe.protocols import EvalContext, EvaluationResult, Evaluator
from augframe.signals import ECGBatch

import augframe_afib.protocol as protocol
from augframe_afib.inputs import groups_of

FAST = {"classifier_params": {"width": 0.0625, "depth": [1, 1, 1, 1]}, "max_epochs": 1, "max_steps_per_epoch": 1, "batch_size": 16, "n_boot": 200}


@pytest.fixture(scope="module")
def data(cinc_short, standin):
    src, syn = standin(cinc_short, 24, seed=1)
    return cinc_short, src, syn


def _no_training(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(protocol, "train_and_test", fail)


def test_corrected_plan_is_grouped_independent_and_leak_free(data, registry):
    real, _, syn = data
    ev = registry.create("evaluator", "three-way", {"folds": 3, "include_d": True})
    assert isinstance(ev, Evaluator)
    plans, notes = ev.plan(real, syn, None, seed=0)
    groups, field = groups_of(real)
    assert field == "patient"
    tests = np.concatenate([p.test for p in plans])
    assert sorted(tests.tolist()) == list(range(len(real)))  # independent test folds covering every ECG once
    syn_groups = np.array([groups[real.ids.index(s)] for s in syn.meta["source_id"]])
    for p in plans:
        a = p.conditions["A"]
        train_groups = set(groups[a.real])
        assert not train_groups & set(groups[p.test]) and not train_groups & set(groups[p.val])
        assert not set(groups[p.val]) & set(groups[p.test])
        n = p.n_synthetic
        assert len(a.real) == 3 * n == p.conditions["B"].size == p.conditions["C"].size
        assert len(p.conditions["B"].noisy_copies) == 2 * n and len(p.conditions["C"].real) == 2 * n
        # no synthetic ECG made from a test or validation patient is trained on
        used = p.conditions["C"].synthetic
        assert not set(syn_groups[used]) & (set(groups[p.test]) | set(groups[p.val]))
        assert p.conditions["D"].augment and np.array_equal(p.conditions["D"].real, a.real)
    assert any("left out" in n for n in notes)
    again, _ = ev.plan(real, syn, None, seed=0)
    assert all(np.array_equal(x.test, y.test) and np.array_equal(x.conditions["C"].real, y.conditions["C"].real)
               for x, y in zip(plans, again))


def test_synthetic_from_another_split_is_kept_in_every_fold(data, registry):
    """Sources outside the real set (the pipeline's training side) cannot leak into a test fold."""
    import attrs

    real, _, syn = data
    syn = syn.select(np.arange(12))
    outside = attrs.evolve(syn, meta=dict(syn.meta, patient_id=np.array([f"train-side-{i % 7}" for i in range(12)])))
    plans, _ = registry.create("evaluator", "three-way", {"folds": 3}).plan(real, outside, None, seed=0)
    assert all(p.n_synthetic == 12 and p.dropped_synthetic == 0 for p in plans)


def test_faithful_plan_shares_one_test_set(data, registry):
    real, _, syn = data
    syn_small = syn.select(np.arange(15))
    ev = registry.create("evaluator", "three-way", {"mode": "faithful", "folds": 3})
    plans, notes = ev.plan(real, syn_small, None, seed=0)
    assert all(np.array_equal(p.test, plans[0].test) for p in plans)
    for p in plans:
        assert not set(p.conditions["A"].real) & set(p.test)
        assert len(p.conditions["A"].real) == 3 * p.n_synthetic
    assert "faithful" in notes[0]
    with pytest.raises(ValidationError, match="condition D"):
        registry.create("evaluator", "three-way", {"mode": "faithful", "include_d": True})


def _relabel(b: ECGBatch, **changes) -> ECGBatch:
    import attrs

    return attrs.evolve(b, **changes)


@pytest.mark.parametrize("case, message", [
    ("names", "label sets differ"),
    ("empty", "empty"),
    ("one_class", "only class"),
    ("few", "too few for 5 folds"),
    ("unlabelled", "no labels"),
    ("rate", "differ in fs"),
])
def test_bad_input_fails_before_any_training(data, registry, monkeypatch, tmp_path, case, message):
    real, _, syn = data
    _no_training(monkeypatch)
    if case == "names":
        syn = _relabel(syn, class_names=("Normal", "AF"))
    elif case == "empty":
        syn = syn.select(np.zeros(0, dtype=np.int64))
    elif case == "one_class":
        syn = syn.select(np.flatnonzero(syn.labels == 0))
    elif case == "few":
        syn = syn.select(np.concatenate([np.flatnonzero(syn.labels == 0)[:3], np.flatnonzero(syn.labels == 1)[:3]]))
    elif case == "unlabelled":
        syn = _relabel(syn, labels=None)
    elif case == "rate":
        syn = _relabel(syn, fs=300.0)
    ev = registry.create("evaluator", "three-way", {"folds": 5, **FAST})
    with pytest.raises(ValidationError, match=message):
        ev.evaluate(real, syn, context=EvalContext(workdir=tmp_path))
    assert not any(tmp_path.rglob("*.json"))


def test_faithful_needs_enough_real_for_t_equals_3n(data, registry, monkeypatch):
    real, _, syn = data
    _no_training(monkeypatch)
    big = ECGBatch.concat([syn, syn, syn])
    big = _relabel(big, ids=[f"s{i}" for i in range(len(big))])
    ev = registry.create("evaluator", "three-way", {"mode": "faithful", "folds": 3, **FAST})
    with pytest.raises(ValidationError, match="T = 3n"):
        ev.evaluate(real, big)


def test_three_way_runs_resumes_and_reports(data, registry, tmp_path, monkeypatch):
    real, _, syn = data
    ev = registry.create("evaluator", "three-way", {"folds": 3, **FAST})
    ctx = EvalContext(seed=3, workdir=tmp_path)
    res = ev.evaluate(real, syn, context=ctx)
    assert isinstance(res, EvaluationResult) and res.name == "three-way"
    assert set(res.tables) == {"summary", "equivalence", "per_fold"}
    assert len(res.tables["per_fold"].rows) == 9 and len(res.tables["summary"].rows) == 3
    for c in "ABC":
        assert 0.0 <= res.metrics[f"{c}.accuracy.mean"] <= 1.0
    for key in ("tost.A_vs_C.accuracy.p", "tost.A_vs_B.accuracy.p", "tost_samples.A_vs_C.paired.p",
                "tost_samples.A_vs_C.bootstrap.p", "mcnemar.A_vs_C.p"):
        assert 0.0 <= res.metrics[key] <= 1.0, key
    assert res.figures["equivalence"].data.startswith("<svg")
    assert "3 folds (corrected)" in res.scale
    # degenerate classifiers (one class for every ECG) must never be called equivalent
    # (per comparison: A - X is not assessable when a run of A or of X is degenerate)
    bad = {row[2] for row in res.tables["per_fold"].rows if (row[7], row[8]) in ((0.0, 1.0), (1.0, 0.0))}
    assert bool(bad) == any("predicted a single class" in n for n in res.notes)
    for row in res.tables["equivalence"].rows:
        assert (row[-1] == protocol.NOT_ASSESSABLE) == bool({"A", row[1][-1]} & bad), row
    for card in res.details["headline"][1:]:
        assert (card["value"] == protocol.NOT_ASSESSABLE) == bool({"A", card["label"][0]} & bad), card
    json.loads(res.to_json())  # serialisable for the report
    runs = sorted(p.name for p in tmp_path.rglob("afib-reslstm.fold*_*.json"))
    assert len(runs) == 9
    # a second evaluation finds every run on disk and trains nothing
    _no_training(monkeypatch)
    again = ev.evaluate(real, syn, context=ctx)
    np.testing.assert_equal(again.metrics, res.metrics)  # NaN-aware
    assert any("loaded from an earlier" in n for n in again.notes)
    # a killed run (its files missing) is the only one trained again
    monkeypatch.undo()
    calls = []
    real_train = protocol.train_and_test

    def counting(*a, **k):
        calls.append(k.get("desc"))
        return real_train(*a, **k)

    monkeypatch.setattr(protocol, "train_and_test", counting)
    victim = next(tmp_path.rglob("afib-reslstm.fold1_C.json"))
    victim.unlink()
    resumed = ev.evaluate(real, syn, context=ctx)
    assert calls == ["afib-reslstm.fold1_C"]
    np.testing.assert_equal(resumed.metrics, res.metrics)  # every random step is seeded: the retrained run is identical


def test_condition_d_with_torch_ecg_crnn(data, registry, tmp_path):
    real, _, syn = data
    ev = registry.create("evaluator", "three-way", {
        "folds": 2, "classifier": "ecg-crnn", "include_d": True, **{**FAST, "classifier_params": {"width": 0.1}}})
    res = ev.evaluate(real, syn, context=EvalContext(seed=0, workdir=tmp_path))
    assert [r[1] for r in res.tables["summary"].rows] == ["A", "B", "C", "D"]
    assert "tost.A_vs_D.accuracy.p" in res.metrics
    assert "ecg-crnn" in res.scale


def test_faithful_run_ensembles_folds_on_the_shared_test_set(data, registry):
    real, _, syn = data
    ev = registry.create("evaluator", "three-way", {"mode": "faithful", "folds": 2, **FAST})
    small = syn.select(np.arange(12))
    res = ev.evaluate(real, small, context=EvalContext(seed=1))
    n = len(ev.plan(real, small, None, seed=1)[0][0].test)
    n_test = {r[3] for r in res.tables["equivalence"].rows if "samples" in r[3]}
    # paired z and bootstrap, both on the one shared test set (fold models ensembled), not on every real ECG
    assert n_test == {f"paired z (samples), n={n}", f"bootstrap (samples), n={n}"} and n < len(real)
    assert "faithful" in res.scale and res.metrics["tost.A_vs_C.accuracy.p"] <= 1.0
