"""The conformance kit passes conforming plugins and names each broken rule of broken ones."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch

from augframe.protocols import Candidates, EvaluationResult, FilterResult
from augframe.testing import (
    ConformanceError, check_classifier, check_evaluator, check_filter, check_generator, check_registered,
    check_source, make_ecg_batch,
)
from core_toys import AmplitudeFilter, MomentsEvaluator, PhaseShiftGenerator, ToySource, toy_registry


def _fitted():
    g = PhaseShiftGenerator()
    g.fit(make_ecg_batch(8, fs=125.0, seconds=2.0))
    return g


def test_make_ecg_batch_is_deterministic_and_labelled():
    a, b = make_ecg_batch(4, seed=1), make_ecg_batch(4, seed=1)
    assert np.array_equal(a.numpy(), b.numpy()) and a.labels.tolist() == [0, 1, 0, 1]
    twelve = make_ecg_batch(2, leads=("I", "II", "V1"), fs=100.0, seconds=10.0)
    assert twelve.signals.shape == (2, 3, 1000) and twelve.leads == ("I", "II", "V1")


def test_toy_plugins_conform():
    src = make_ecg_batch(6, fs=125.0, seconds=2.0)
    rep = check_generator(_fitted(), sources=src)
    assert "transfer: batch-size invariant (a request split in two gives the same samples)" in rep.passed
    assert "sample: same seeds give the same samples" in rep.passed
    assert check_filter(AmplitudeFilter(), src).passed
    assert "JSON round trip is lossless" in check_evaluator(MomentsEvaluator()).passed
    assert check_source(ToySource(n=4)).passed
    assert check_registered(toy_registry(), "filter", "amplitude", {"max_ratio": 1.5}).kind == "filter"


class _BatchDependent(PhaseShiftGenerator):
    """Breaks batch invariance (noise from a batch-level RNG) and drops the requested labels."""

    def generate(self, request):
        out = super().generate(request)
        g = torch.Generator().manual_seed(len(request))
        x = out.batch.torch() + torch.randn(out.batch.signals.shape, generator=g)
        return attrs.evolve(out, batch=out.batch.with_signals(x, labels=np.zeros(len(request), np.int64)))


class _Unseeded(PhaseShiftGenerator):
    def generate(self, request):
        return super().generate(attrs.evolve(request, seeds=np.zeros(len(request), np.int64)))


def test_broken_generators_fail_with_named_rules():
    with pytest.raises(ConformanceError) as err:
        check_generator(_BatchDependent(), sources=make_ecg_batch(6, fs=125.0, seconds=2.0), kinds=["transfer"])
    msg = str(err.value)
    assert "transfer: batch-size invariant" in msg and "transfer: labels are the requested labels" in msg
    with pytest.raises(ConformanceError, match="seeds are the request's|other seeds give other samples"):
        check_generator(_Unseeded(), sources=make_ecg_batch(4, fs=125.0, seconds=2.0), kinds=["transfer"])
    with pytest.raises(ConformanceError, match="satisfies the Generator protocol"):
        check_generator(object())


class _DropsUnits(PhaseShiftGenerator):
    """Rebuilds its output batch without passing the sources' units on (so they read "mV")."""

    def generate(self, request):
        out = super().generate(request)
        b = out.batch
        plain = type(b)(b.numpy(), b.fs, b.leads, labels=b.labels, class_names=b.class_names, ids=b.ids)
        return attrs.evolve(out, batch=plain)


def test_a_generator_that_drops_units_fails():
    g = _DropsUnits()
    g.fit(make_ecg_batch(8, fs=125.0, seconds=2.0))
    with pytest.raises(ConformanceError, match="transfer: keeps the sources' units"):
        check_generator(g, sources=make_ecg_batch(6, fs=125.0, seconds=2.0), kinds=["transfer"])


class _BadFilter:
    name = "bad"

    def score(self, candidates, sources=None):
        n = len(candidates)
        if float(np.abs(candidates.numpy()).max()) == 0.0:
            raise ZeroDivisionError("flat")
        return FilterResult("other-name", np.full(n, 0.5), np.zeros(n, bool))


def test_broken_filter_fails_with_named_rules():
    with pytest.raises(ConformanceError) as err:
        check_filter(_BadFilter())
    msg = str(err.value)
    assert "result name is the filter's name" in msg
    assert "rejected samples say why" in msg
    assert "a flat line is scored, not an exception: raised ZeroDivisionError" in msg


class _BadEvaluator:
    name = "bad-eval"

    def evaluate(self, real, synthetic, *, sources=None, context=None):
        return EvaluationResult("bad-eval", {"nan": float("nan")}, details={"obj": object()})


def test_broken_evaluator_fails():
    with pytest.raises(ConformanceError) as err:
        check_evaluator(_BadEvaluator())
    assert "metrics are finite numbers" in str(err.value) and "serialises to JSON" in str(err.value)


class _TinyClassifier(torch.nn.Module):
    class_names = ("N", "A")

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 4, 5)
        self.head = torch.nn.Linear(4, 2)

    def embed(self, x):
        return self.conv(x).mean(-1)

    def forward(self, x):
        return self.head(self.embed(x))


def test_classifier_checks():
    torch.manual_seed(0)
    assert "state_dict round trip is lossless" in check_classifier(_TinyClassifier()).passed

    class Wrong(_TinyClassifier):
        class_names = ("N", "A", "O")

    with pytest.raises(ConformanceError, match="logits are"):
        check_classifier(Wrong())


def test_candidates_contract_is_enforced_by_core_types():
    b = make_ecg_batch(3)
    with pytest.raises(Exception, match="seeds has 2 entries for 3"):
        Candidates(b, [1, 2], PhaseShiftGenerator().info)


def test_the_plugin_in_the_docs_conforms(tmp_path, monkeypatch):
    """docs/writing-a-plugin.md's example module is real code that passes the kit."""
    import re
    import sys
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "writing-a-plugin.md").read_text()
    code = re.search(r"```python\n# my_augframe_plugin.py\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "my_augframe_plugin.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_augframe_plugin as mod

    check_generator(mod.Jitter(), sources=make_ecg_batch(6, fs=250.0, seconds=4.0))
    check_filter(mod.Flatline())
    from augframe.plugins import Registry

    reg = Registry()
    reg.register_module(mod, name="jitter")
    assert reg.names("generator") == ["jitter"] and reg.names("filter") == ["flatline"]
    sys.modules.pop("my_augframe_plugin", None)
