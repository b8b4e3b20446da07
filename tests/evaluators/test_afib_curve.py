"""The augmentation-curve evaluator: cell plan, leakage, equal added counts, external sets, resume, paired tests.

A fake classifier (an nn.Module with a non-gradient ``fit``: a threshold on signal roughness)
and small synthetic-looking data keep every training to microseconds.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import augframe
from augframe.errors import ValidationError
from augframe.plugins import Registry
from augframe.protocols import EvalContext, EvaluationResult, Evaluator, ExternalSet
from augframe.signals import ECGBatch

import augframe_afib.curve as curve
import augframe_afib.plugin as afib_plugin
from augframe_afib.curve import AugmentationCurveEvaluator, cell_metrics, paired_difference

FS, SAMPLES, NAMES = 100.0, 200, ("N", "A")


class RoughnessClassifier(nn.Module):
    """AF-ish when the ECG is rough: logit = gain * (std of first differences - threshold), fitted by class means."""

    def __init__(self, class_names=NAMES, seed: int = 0) -> None:
        super().__init__()
        self.class_names = tuple(class_names)
        self.register_buffer("threshold", torch.zeros(()))

    @staticmethod
    def feature(x) -> np.ndarray:
        return np.diff(np.asarray(x, dtype=np.float64), axis=-1).std(axis=-1).mean(axis=-1)

    def fit(self, x, y, x_val, y_val, *, seed: int) -> dict:
        f = self.feature(x)
        self.threshold.fill_(float((f[y == 0].mean() + f[y == 1].mean()) / 2))
        return {"threshold": float(self.threshold)}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.feature(x.detach().cpu().numpy()), dtype=torch.float32)[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.as_tensor(self.feature(x.detach().cpu().numpy()), dtype=torch.float32)
        z = 20.0 * (f - self.threshold)
        return torch.stack([-z / 2, z / 2], dim=1)


def _plugin() -> types.ModuleType:
    mod = types.ModuleType("fake_curve_classifier")

    @augframe.hookimpl
    def augframe_register_classifiers(register):
        register("roughness", RoughnessClassifier)

    mod.augframe_register_classifiers = augframe_register_classifiers
    return mod


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry()
    reg.register_module(_plugin(), name="fake")
    reg.register_module(afib_plugin, name="afib")
    return reg


def _windows(labels, rng, noise_a=0.5, noise_n=0.25) -> np.ndarray:
    t = np.arange(SAMPLES) / FS
    base = np.sin(2 * np.pi * 1.2 * t)[None, None, :]
    sd = np.where(np.asarray(labels) == 1, noise_a, noise_n)[:, None, None] * rng.uniform(0.6, 1.4, (len(labels), 1, 1))
    return (base + rng.normal(0.0, 1.0, (len(labels), 1, SAMPLES)) * sd).astype(np.float32)


def _batch(prefix: str, n_n: int, n_a: int, per: int, rng) -> ECGBatch:
    """``n_n`` N records and ``n_a`` A records of ``per`` windows each; meta record/patient = the record."""
    rec_labels = [0] * n_n + [1] * n_a
    records = [f"{prefix}{i:03d}" for i in range(len(rec_labels))]
    labels = np.repeat(rec_labels, per)
    recs = np.repeat(records, per)
    ids = [f"{r}:w{k}" for r in records for k in range(per)]
    return ECGBatch(_windows(labels, rng), FS, ("I",), labels=labels, class_names=NAMES, ids=ids,
                    meta={"record": recs, "patient": recs})


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    pool = _batch("p", 30, 10, 3, rng)
    test = _batch("t", 12, 6, 2, rng)
    # synthetic AF made from every pool window (N -> A and A -> A), plus some from test records and unknown ones
    src_ids = list(pool.ids) + list(test.ids[:6]) + ["elsewhere:w0"] * 4
    x = _windows(np.ones(len(src_ids), int), rng, noise_a=0.42)
    syn = ECGBatch(x, FS, ("I",), labels=np.ones(len(src_ids), int), class_names=NAMES,
                   ids=[f"syn{i}" for i in range(len(src_ids))], meta={"source_id": np.asarray(src_ids)})
    ext_a = ECGBatch(_windows(np.ones(8, int), rng), FS, ("I",), labels=np.ones(8, int), class_names=NAMES)
    ext_n = ECGBatch(_windows(np.zeros(8, int), rng), FS, ("I",), class_names=NAMES)
    externals = (ExternalSet("aflike", ext_a, "A"), ExternalSet("sinuslike", ext_n, "N"))
    return pool, test, syn, externals


def _record_of(ids) -> np.ndarray:
    return np.array([i.split(":")[0] for i in ids])


FAST = {"classifiers": ["roughness"], "fractions": [0.2, 1.0], "seeds": 3}


def _curve(registry: Registry, params: dict) -> AugmentationCurveEvaluator:
    return AugmentationCurveEvaluator(**params, registry=registry)


def test_plan_is_paired_nested_and_leak_free(data, registry):
    pool, test, syn, _ = data
    assert isinstance(registry.create("evaluator", "augmentation-curve", FAST), Evaluator)
    ev = _curve(registry, {**FAST, "fractions": [0.1, 0.5, 1.0]})
    plans, syn_groups = ev.plan(pool, test, syn, None, seed=3)
    assert [(p.seed_index, p.fraction) for p in plans] == [(k, f) for k in range(3) for f in (0.1, 0.5, 1.0)]
    groups = np.asarray(pool.meta["record"])
    test_groups = set(np.asarray(test.meta["record"]))
    assert set(syn_groups[-4:]) == {""} and set(syn_groups[-10:-4]) <= test_groups
    for k in range(3):
        cells = [p for p in plans if p.seed_index == k]
        assert all(np.array_equal(c.val, cells[0].val) for c in cells)  # one validation split per seed
        minority_sets = [set(groups[c.real][pool.labels[c.real] == 1]) for c in cells]
        assert minority_sets[0] < minority_sets[1] < minority_sets[2]  # nested fractions
        assert [c.minority_records for c in cells] == [max(1, round(f * c.minority_available))
                                                       for f, c in zip((0.1, 0.5, 1.0), cells)]
        majority = set(np.flatnonzero(pool.labels == 0)) - set(cells[0].val)
        for c in cells:
            assert majority <= set(c.real) and not set(groups[c.real]) & set(groups[c.val])
            used = set(syn_groups[c.synthetic])
            assert used <= set(groups[c.real])  # only sources in this cell's training records
            assert not used & (set(groups[c.val]) | test_groups | {""})
            assert np.all(syn.labels[c.synthetic] == 1) and np.all(pool.labels[c.duplicates] == 1)
            assert len(c.duplicates) == len(c.synthetic) == min(c.target, c.eligible)
            assert set(c.duplicates) <= set(c.real)
            n_min = int(np.sum(pool.labels[c.real] == 1))
            assert c.target == int(np.sum(pool.labels[c.real] == 0)) - n_min  # "balance"
    other_seed, _ = ev.plan(pool, test, syn, None, seed=4)
    assert not np.array_equal(other_seed[0].val, plans[0].val)
    fixed, _ = _curve(registry, {**FAST, "n_synthetic": 5}).plan(pool, test, syn, None, seed=3)
    assert {len(p.synthetic) for p in fixed} == {len(p.duplicates) for p in fixed} == {5}


def test_classifier_specs():
    specs = curve.parse_classifiers(["rr-features", {"name": "afib-reslstm", "params": {"width": 0.25},
                                                     "label": "reslstm-small"}])
    assert [(s.name, s.label, dict(s.params)) for s in specs] == [
        ("rr-features", "rr-features", {}), ("afib-reslstm", "reslstm-small", {"width": 0.25})]
    assert specs[1].tag != curve.ClassifierSpec("afib-reslstm", {"width": 0.5}, "reslstm-small").tag
    with pytest.raises(ValidationError, match="optional .params. and .label."):
        curve.parse_classifiers([{"name": "x", "parms": {}}])


@pytest.fixture(scope="module")
def full(data, registry):
    """One full run (every condition) with the training calls recorded."""
    pool, test, syn, externals = data
    calls = []
    real_train = curve.train_and_test

    def spy(model, train, val, tests, settings, **kw):
        calls.append({"desc": kw["desc"], "x": train[0], "y": train[1], "tests": sorted(tests)})
        return real_train(model, train, val, tests, settings, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(curve, "train_and_test", spy)
    try:
        ev = _curve(registry, FAST)
        result = ev.evaluate(test, syn, context=EvalContext(seed=1, train=pool, external=externals))
    finally:
        mp.undo()
    return ev, result, calls


def test_cells_conditions_and_added_counts(full, data):
    ev, result, calls = full
    pool, _, syn, _ = data
    assert isinstance(result, EvaluationResult) and result.name == "augmentation-curve"
    assert len(calls) == 1 * 2 * 4 * 3 and len(result.details["cells"]) == 24
    assert {c["tests"] == ["ext0", "ext1", "test"] for c in calls} == {True}
    by_name = {c["desc"]: c for c in calls}
    for name, rec in result.details["cells"].items():
        if rec["condition"] == "real":
            continue
        real_x = by_name[name.replace(rec["condition"], "real")]["x"]
        x = by_name[name]["x"]
        assert len(x) == len(real_x) + rec["n_added"]  # the same added count in every non-real condition
        np.testing.assert_array_equal(x[: len(real_x)], real_x)
        added = x[len(real_x):]
        if rec["condition"] == "synthetic":  # every added window is a synthetic ECG
            flat = syn.numpy().reshape(len(syn), -1)
            assert all(np.any(np.all(flat == a.reshape(-1), axis=1)) for a in added)
        if rec["condition"] == "oversampled":  # every added window is a real minority window of this cell
            mine = real_x[by_name[name]["y"][: len(real_x)] == 1].reshape(-1, SAMPLES)
            assert all(np.any(np.all(mine == a.reshape(-1), axis=1)) for a in added)
        if rec["condition"] == "classical" and rec["n_added"]:
            assert not np.allclose(added, by_name[name.replace("classical", "oversampled")]["x"][len(real_x):])
    added = {(r["fraction"], r["seed"], r["condition"]): r["n_added"] for r in result.details["cells"].values()}
    for (f, s, c), n in added.items():
        if c != "real":
            assert n == added[(f, s, "synthetic")] > 0
    assert len(result.tables["summary_roughness"].rows) == 2 * 4
    assert result.figures["curve"].format == "svg" and "<polyline" in result.figures["curve"].data
    assert "independent judge" in " ".join(result.notes)


def test_one_class_external_sets_report_only_sensitivity_or_specificity(full):
    _, result, _ = full
    keys = set(result.metrics)
    assert "roughness.20%.synthetic.aflike sensitivity.mean" in keys
    assert "roughness.20%.synthetic.sinuslike specificity.mean" in keys
    assert not [k for k in keys if "aflike" in k and "sensitivity" not in k]
    assert not [k for k in keys if "sinuslike" in k and "specificity" not in k]
    cols = result.tables["summary_roughness"].columns
    assert "aflike sensitivity" in cols and "sinuslike specificity" in cols
    assert not [c for c in cols if "AUROC" in c and ("aflike" in c or "sinuslike" in c)]


def test_cell_metrics_one_class_values():
    proba = np.array([[0.2, 0.8], [0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    y_test = np.array([1, 0, 1, 0])
    ext = (ExternalSet("af", ECGBatch(np.zeros((4, 1, 5), np.float32), FS, ("I",)), "A"),
           ExternalSet("sinus", ECGBatch(np.zeros((4, 1, 5), np.float32), FS, ("I",)), "N"))
    m = cell_metrics({"proba_test": proba, "proba_ext0": proba, "proba_ext1": proba}, y_test, ext, 1, NAMES)
    assert m["af sensitivity"] == 0.5 and m["sinus specificity"] == 0.5
    assert set(m) == {"auroc", "f1", "sensitivity", "specificity", "af sensitivity", "sinus specificity"}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy on near-constant differences
def test_paired_tests_shape_and_values(full):
    _, result, _ = full
    rows = result.tables["paired_tests_roughness"].rows
    assert [r[:2] for r in rows] == [(f, d) for f in ("20%", "100%") for d in
                                     ("synthetic - real", "synthetic - oversampled", "classical - real",
                                      "synthetic - classical")]
    for f in ("20%", "100%"):
        for d in ("synthetic-real", "synthetic-oversampled", "classical-real", "synthetic-classical"):
            for m in ("auroc", "f1", "sensitivity", "specificity"):
                tag = f"roughness.{f}.{d}.{m}"
                assert {f"{tag}.diff", f"{tag}.diff_sd", f"{tag}.t_p", f"{tag}.wilcoxon_p"} <= set(result.metrics)
    cells = result.details["cells"].values()
    assert len({c["seed"] for c in cells}) == 3

    def per_seed(cond: str) -> list[float]:
        got = sorted((c["seed_index"], c["metrics"]["f1"]) for c in cells if c["condition"] == cond
                     and c["fraction"] == 0.2)
        return [v for _, v in got]

    syn, over = per_seed("synthetic"), per_seed("oversampled")
    assert result.metrics["roughness.20%.synthetic-oversampled.f1.diff"] == pytest.approx(np.mean(np.subtract(syn, over)))
    if np.any(np.subtract(syn, over)):  # paired by seed: the test equals scipy's on the seed-ordered values
        assert result.metrics["roughness.20%.synthetic-oversampled.f1.t_p"] == pytest.approx(
            stats.ttest_rel(syn, over).pvalue, nan_ok=True)
    verdict = [n for n in result.notes if n.startswith("roughness: synthetic")]
    assert len(verdict) == 1 and ("beat BOTH" in verdict[0] or "do NOT beat both" in verdict[0])


def test_paired_difference():
    a, b = [0.9, 0.8, 0.85, 0.7, 0.95], [0.8, 0.82, 0.7, 0.6, 0.9]
    d = paired_difference(a, b)
    assert d.testable and d.n == 5
    assert d.t_p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert d.wilcoxon_p == pytest.approx(stats.wilcoxon(np.subtract(a, b)).pvalue)
    assert not paired_difference([0.9, 0.8], [0.7, 0.6]).testable
    assert paired_difference([0.5] * 4, [0.5] * 4).t_p == 1.0


def test_two_seeds_are_not_testable(data, registry):
    pool, test, syn, _ = data
    ev = _curve(registry, {**FAST, "seeds": 2, "conditions": ["real", "oversampled", "synthetic"]})
    result = ev.evaluate(test, syn, context=EvalContext(seed=0, train=pool))
    rows = result.tables["paired_tests_roughness"].rows
    assert len(rows) == 2 * 2 and all(r[3] == curve.NOT_TESTABLE for r in rows)
    assert any("not testable" in n for n in result.notes)
    assert result.details["headline"][0]["value"] == curve.NOT_TESTABLE


def test_resume_after_a_kill_trains_only_missing_cells(data, registry, tmp_path, monkeypatch):
    pool, test, syn, _ = data
    params = {**FAST, "conditions": ["real", "oversampled", "synthetic"]}
    real_train, count = curve.train_and_test, {"n": 0}

    def killed_after_5(*a, **k):
        if count["n"] == 5:
            raise KeyboardInterrupt("simulated kill")
        count["n"] += 1
        return real_train(*a, **k)

    ctx = EvalContext(seed=2, train=pool, workdir=tmp_path)
    monkeypatch.setattr(curve, "train_and_test", killed_after_5)
    with pytest.raises(KeyboardInterrupt):
        _curve(registry, params).evaluate(test, syn, context=ctx)
    count["n"] = 0
    monkeypatch.setattr(curve, "train_and_test", lambda *a, **k: (count.__setitem__("n", count["n"] + 1),
                                                                  real_train(*a, **k))[1])
    resumed = _curve(registry, params).evaluate(test, syn, context=ctx)
    assert count["n"] == 2 * 3 * 3 - 5
    count["n"] = 0
    again = _curve(registry, params).evaluate(test, syn, context=ctx)
    assert count["n"] == 0
    fresh = _curve(registry, params).evaluate(
        test, syn, context=EvalContext(seed=2, train=pool))
    assert resumed.metrics == again.metrics
    assert resumed.metrics.keys() == fresh.metrics.keys()
    np.testing.assert_allclose([resumed.metrics[k] for k in fresh.metrics], list(fresh.metrics.values()),
                               rtol=1e-6, equal_nan=True)


def test_bad_input_is_refused_before_training(data, registry, monkeypatch):
    pool, test, syn, externals = data
    monkeypatch.setattr(curve, "train_and_test", lambda *a, **k: pytest.fail("training started"))
    ev = _curve(registry, FAST)
    with pytest.raises(ValidationError, match="EvalContext\\(train="):
        ev.evaluate(test, syn, context=EvalContext())
    unlinked = ECGBatch(syn.numpy(), FS, ("I",), labels=syn.labels, class_names=NAMES)
    with pytest.raises(ValidationError, match="no link to their sources"):
        ev.evaluate(test, unlinked, context=EvalContext(train=pool))
    with pytest.raises(ValidationError, match="one_class"):
        ev.evaluate(test, syn, context=EvalContext(train=pool, external=(ExternalSet("bad", externals[1].batch, "X"),)))
    with pytest.raises(ValidationError, match="declared one-class"):  # an AF set declared sinus
        ev.evaluate(test, syn, context=EvalContext(train=pool, external=(ExternalSet("bad", externals[0].batch, "N"),)))
    only_n = syn.with_signals(syn.numpy(), labels=np.zeros(len(syn), int))
    with pytest.raises(ValidationError, match="minority class"):
        ev.evaluate(test, only_n, context=EvalContext(train=pool))
    with pytest.raises(ValidationError, match="fractions"):
        AugmentationCurveEvaluator(classifiers=["roughness"], fractions=[0.0, 0.5])
    with pytest.raises(ValidationError, match="label"):
        AugmentationCurveEvaluator(classifiers=["roughness", {"name": "roughness"}])
    from augframe.errors import PluginError

    with pytest.raises(PluginError):
        AugmentationCurveEvaluator(classifiers=["no-such"], registry=registry).evaluate(
            test, syn, context=EvalContext(train=pool))


def test_line_plot_leaves_gaps_and_keeps_bounds():
    from augframe.report.svg import line_plot

    fig = line_plot([{"title": "t", "ylabel": "AUROC",
                      "series": {"a": ([0.5, float("nan"), 0.9, 0.95], [0.1, 0.0, 0.2, 0.2])}}],
                    x=[0.05, 0.1, 0.5, 1.0], log_x=True, y_clip=(0.0, 1.0))
    assert fig.data.count("<polyline") == 1 and fig.data.count("<circle") == 3  # no line across the NaN
    assert ">1.2<" not in fig.data  # the axis stops at 1
    with pytest.raises(ValueError, match="log_x"):
        line_plot([{"series": {"a": ([1.0], [0.0])}}], x=[0.0], log_x=True)


def test_tstr_reports_one_class_external_sets_as_sensitivity_or_specificity(data, registry):
    from augframe_afib.tstr import TSTREvaluator

    pool, test, syn, externals = data
    real = ECGBatch(np.concatenate([pool.numpy(), test.numpy()]), FS, ("I",),
                    labels=np.concatenate([pool.labels, test.labels]), class_names=NAMES,
                    ids=list(pool.ids) + list(test.ids),
                    meta={"patient": np.concatenate([pool.meta["patient"], test.meta["patient"]])})
    both = syn.select(np.arange(40))
    both = ECGBatch(np.concatenate([both.numpy(), _windows(np.zeros(40, int), np.random.default_rng(1))]), FS,
                    ("I",), labels=np.r_[np.ones(40, int), np.zeros(40, int)], class_names=NAMES)
    res = TSTREvaluator(classifier="roughness", registry=registry).evaluate(
        real, both, context=EvalContext(seed=2, external=externals))
    table = res.tables["external"]
    got = {(r[1], r[2]): (r[3], r[5]) for r in table.rows}
    assert got[("TSTR", "aflike")][0] == "sensitivity" and got[("TSTR", "sinuslike")][0] == "specificity"
    assert all(0.0 <= v <= 1.0 for _, v in got.values())
    assert "auroc" not in " ".join(k for k in res.metrics if "aflike" in k)
    assert res.metrics["roughness/tstr.aflike.sensitivity"] == got[("TSTR", "aflike")][1]
