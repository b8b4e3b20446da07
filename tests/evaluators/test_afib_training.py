"""The classifier training recipe: balanced batches, per-step lr, early stopping, non-gradient dispatch,
and the three-way / TSTR protocols with two classifiers side by side.

Tiny stand-in models (a 4-channel convolution; a threshold "fit" classifier) keep every run to
well under a second, so these tests check the loop's logic, not a classifier's skill.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from torch import nn

import augframe
import augframe_afib.fit as fit_mod
import augframe_afib.plugin as afib_plugin
from augframe.errors import ValidationError
from augframe.plugins import Registry
from augframe.protocols import EvalContext
from augframe_afib.fit import TrainSettings, fit_classifier
from augframe_afib.runs import classifier_specs, train_and_test

NAMES = ("N", "A")


class TinyConv(nn.Module):
    """conv -> ReLU -> time mean -> linear; records the class mix of every training batch it sees
    (the data below put the label in the sign of the first sample)."""

    def __init__(self, class_names=NAMES, seed: int = 0) -> None:
        super().__init__()
        self.class_names = tuple(class_names)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv = nn.Conv1d(1, 4, 9, stride=4)
            self.head = nn.Linear(4, len(class_names))
        self.batches: list[tuple[int, int]] = []

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            a = int((x[:, 0, 0] > 0).sum())
            self.batches.append((len(x) - a, a))
        return self.head(self.embed(x))


class RoughnessFit(nn.Module):
    """A non-gradient classifier: AF when the first differences are rough; ``fit`` sets the threshold."""

    def __init__(self, class_names=NAMES, seed: int = 0) -> None:
        super().__init__()
        self.class_names = tuple(class_names)
        self.register_buffer("threshold", torch.zeros(()))
        self.calls: list[dict] = []

    @staticmethod
    def feature(x) -> np.ndarray:
        return np.diff(np.asarray(x, dtype=np.float64), axis=-1).std(axis=-1).mean(axis=-1)

    def fit(self, x_train, y_train, x_val=None, y_val=None, *, seed: int = 0) -> dict:
        f = self.feature(x_train)
        self.threshold.fill_(float((f[y_train == 0].mean() + f[y_train == 1].mean()) / 2))
        self.calls.append({"n": len(x_train), "n_val": None if x_val is None else len(x_val), "seed": seed})
        return {"threshold": np.float64(self.threshold), "counts": np.bincount(y_train)}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.feature(x.detach().cpu()), dtype=torch.float32)[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 20.0 * (torch.as_tensor(self.feature(x.detach().cpu()), dtype=torch.float32) - self.threshold)
        return torch.stack([-z / 2, z / 2], dim=1)


def _data(n_n: int, n_a: int, seed: int = 0, samples: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Label in the sign of sample 0 (for TinyConv's bookkeeping); A windows are rougher."""
    rng = np.random.default_rng(seed)
    y = np.array([0] * n_n + [1] * n_a)
    x = rng.normal(0, 1, (len(y), 1, samples)) * np.where(y == 1, 0.6, 0.3)[:, None, None]
    x[:, 0, 0] = np.where(y == 1, 1.0, -1.0)
    return x.astype(np.float32), y


def test_fit_draws_class_balanced_batches_and_follows_the_lr_schedule():
    x, y = _data(90, 10)  # 10 % minority
    settings = TrainSettings(max_steps=30, batch_size=10, patience=100)
    model = TinyConv()
    fit = fit_classifier(model, x, y, x[80:], y[80:], settings, seed=0)
    assert fit.steps == 30 and len(model.batches) == 30
    assert all(n == a == 5 for n, a in model.batches)  # every batch half N, half A
    for row in fit.history:  # the lr logged after each epoch is the schedule's value at its last step
        assert row["lr"] == pytest.approx(settings.lr_at(row["step"] - 1, 30))
    unbalanced = TinyConv()
    fit_classifier(unbalanced, x, y, x[80:], y[80:], TrainSettings(max_steps=30, batch_size=10, balance="none"), seed=0)
    assert sum(a for _, a in unbalanced.batches) == 30  # plain epochs: each of the 10 A once per pass


def test_lr_schedule_values():
    s = TrainSettings(max_steps=100, lr=1e-3, warmup_fraction=0.1)
    assert s.lr_at(0, 100) == pytest.approx(1e-4) and s.lr_at(9, 100) == pytest.approx(1e-3)
    assert s.lr_at(55, 100) == pytest.approx(5e-4)  # halfway through the cosine
    assert s.lr_at(99, 100) < 1e-6 and s.lr_at(150, 100) == 0.0
    assert TrainSettings.reference().lr_at(50, 100) == 1e-3  # the reference keeps lr constant


def test_budget_is_in_steps_and_old_epoch_caps_still_bound_it():
    assert TrainSettings(max_steps=500).plan(40) == (40, 500)  # an epoch is one pass, the budget 500 steps
    assert TrainSettings(max_steps=500, max_epochs=3, max_steps_per_epoch=10).plan(40) == (10, 30)
    with pytest.raises(ValidationError, match="budget"):
        TrainSettings(max_steps=None, max_epochs=None)
    with pytest.raises(ValidationError, match="balance"):
        TrainSettings(balance="oversample")


def test_early_stopping_keeps_the_best_epoch(monkeypatch):
    x, y = _data(30, 30)
    scores = iter([0.6, 0.9, 0.7, 0.8, 0.5, 0.95])
    states = []

    def scripted(model, *a, **k):
        states.append({k_: v.clone() for k_, v in model.state_dict().items()})
        return {"val_loss": 0.5, "val_balanced_loss": 0.5, "val_auroc": next(scores)}

    monkeypatch.setattr(fit_mod, "validate", scripted)
    model = TinyConv()
    fit = fit_classifier(model, x, y, x, y, TrainSettings(max_steps=60, batch_size=10, patience=3), seed=1)
    assert fit.best_epoch == 2 and fit.epochs_run == 5 and fit.stopped_early and not fit.hit_cap
    assert fit.best_val_auroc == 0.9
    assert all(torch.equal(model.state_dict()[k], states[1][k]) for k in states[1])  # epoch 2's weights restored
    assert not all(torch.equal(states[4][k], states[1][k]) for k in states[1])


def test_train_and_test_dispatches_to_a_non_gradient_fit():
    x, y = _data(40, 40, seed=2)
    model = RoughnessFit()
    rec, arrays = train_and_test(model, (x[:60], y[:60]), (x[60:], y[60:]), {"test": x[60:]}, TrainSettings(),
                                 seed=7, device="cpu")
    assert model.calls == [{"n": 60, "n_val": 20, "seed": 7}]
    assert rec["trainer"] == "fit" and rec["fit_info"]["counts"] == np.bincount(y[:60]).tolist()
    assert float(model.threshold) == pytest.approx(rec["fit_info"]["threshold"])
    assert np.mean(arrays["proba_test"].argmax(1) == y[60:]) > 0.9
    grad, _ = train_and_test(TinyConv(), (x[:60], y[:60]), (x[60:], y[60:]), {"test": x[60:]},
                             TrainSettings(max_steps=2, batch_size=10), seed=7, device="cpu")
    assert grad["trainer"] == "gradient" and set(grad) - {"fit_info"} == set(rec) - {"fit_info"}


def test_classifier_specs():
    one = classifier_specs("afib-reslstm", {"width": 0.5}, None)
    assert [(s.label, s.params) for s in one] == [("afib-reslstm", {"width": 0.5})]
    two = classifier_specs("afib-reslstm", {"width": 0.5}, ["afib-reslstm", {"name": "rr-features", "params": {"c": 1}}])
    assert [(s.label, s.name, s.params) for s in two] == [("afib-reslstm", "afib-reslstm", {"width": 0.5}),
                                                          ("rr-features", "rr-features", {"c": 1})]
    with pytest.raises(ValidationError, match="repeated labels"):
        classifier_specs("a", None, ["a", {"name": "a"}])


@pytest.fixture(scope="module")
def fake_registry() -> Registry:
    mod = types.ModuleType("fake_training_classifiers")

    @augframe.hookimpl
    def augframe_register_classifiers(register):
        register("tiny-conv", TinyConv)
        register("roughness", RoughnessFit)

    mod.augframe_register_classifiers = augframe_register_classifiers
    reg = Registry()
    reg.register_module(mod, name="fake")
    reg.register_module(afib_plugin, name="afib")
    return reg


TWO = {"classifier": "tiny-conv", "classifiers": ["tiny-conv", "roughness"], "max_steps": 3, "batch_size": 8}


def test_three_way_with_two_classifiers_reports_each(cinc_short, standin, fake_registry, tmp_path):
    real = cinc_short.with_signals(np.ascontiguousarray(cinc_short.numpy()[:, :, :256]))
    _, syn = standin(real, 12, seed=1)
    ev = fake_registry.create("evaluator", "three-way", {"folds": 2, "n_boot": 50, "registry": fake_registry, **TWO})
    res = ev.evaluate(real, syn, context=EvalContext(seed=0, workdir=tmp_path))
    assert [(r[0], r[1]) for r in res.tables["summary"].rows] == [
        (c, cond) for c in ("tiny-conv", "roughness") for cond in "ABC"]
    assert {r[0] for r in res.tables["per_fold"].rows} == {"tiny-conv", "roughness"}
    assert {r[0] for r in res.tables["equivalence"].rows} == {"tiny-conv", "roughness"}
    for c in ("tiny-conv", "roughness"):
        assert 0.0 <= res.metrics[f"{c}/A.auroc.mean"] <= 1.0 and f"{c}/A.auroc.sd" in res.metrics
        assert f"{c}/tost.A_vs_C.accuracy.p" in res.metrics
    assert res.metrics["A.auroc.mean"] == res.metrics["tiny-conv/A.auroc.mean"]  # the primary, unprefixed
    assert res.metrics["A.auroc.mean"] != res.metrics["roughness/A.auroc.mean"]
    runs = res.details["runs"]
    assert runs["roughness.fold0_A"]["trainer"] == "fit" and runs["tiny-conv.fold0_A"]["trainer"] == "gradient"
    assert any(card["label"].startswith("roughness: ") for card in res.details["headline"])


def test_tstr_with_two_classifiers_and_repeats(cinc_short, standin, fake_registry):
    real = cinc_short.with_signals(np.ascontiguousarray(cinc_short.numpy()[:, :, :256]))
    _, syn = standin(real, 20, seed=2)
    res = fake_registry.create("evaluator", "tstr", {"repeats": 2, "registry": fake_registry, **TWO}).evaluate(real, syn)
    rows = res.tables["tstr"].rows
    assert [(r[0], r[1]) for r in rows] == [(c, s) for c in ("tiny-conv", "roughness") for s in ("TRTR", "TRTS", "TSTR")]
    assert all(" +- " in r[6] for r in rows)  # mean +- SD over the two repeats
    for c in ("tiny-conv", "roughness"):
        assert 0.0 <= res.metrics[f"{c}/tstr.f1"] <= 1.0 and np.isfinite(res.metrics[f"{c}/trtr.auroc.sd"])
    assert len(res.details["runs"]) == 2 * 2 * 2  # classifiers x repeats x (train real, train synthetic)
