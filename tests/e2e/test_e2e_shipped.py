"""The shipped recipes parse and name real plugins; the shipped checkpoints load and work."""

from __future__ import annotations

import tomllib

import attrs
import numpy as np
import pytest
import torch

from augframe import recipe as recipes
from augframe.data import demo_windows
from augframe.paths import resolve
from augframe.protocols import GenerationRequest

RECIPES = ("quickstart", "afib-cinc", "afib-paper", "afib-cinc-cpu", "afib-cinc-cpu-full")


def _quickstart(repo):
    return tomllib.loads((repo / "recipes/quickstart.toml").read_text())


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_parses_and_names_registered_plugins(repo, registry, name):
    r = recipes.load(repo / "recipes" / f"{name}.toml")
    recipes.check_plugins(r, registry)
    assert r.run.name == name
    assert recipes.parse(tomllib.loads(r.to_toml())).to_toml() == r.to_toml()  # resolved form is valid input


def test_quickstart_uses_the_shipped_checkpoints(repo):
    q = _quickstart(repo)
    assert q["generator"]["fit"] is False
    fidelity = next(e for e in q["evaluators"] if e["name"] == "fidelity")
    judge = fidelity["params"]["judge_params"]["checkpoint"]
    assert q["generator"]["checkpoint"] == "pretrained:diffstylets-w16-cinc2017"
    assert judge == "pretrained:afib-reslstm-w025-cinc2017"
    for name in (q["generator"]["checkpoint"], judge):
        assert resolve(name).is_file() and resolve(name).suffix == ".safetensors"
    for card in ("plugins/augframe_diffstylets/pretrained/MODEL_CARD.md", "plugins/augframe_afib/pretrained/MODEL_CARD.md"):
        assert (repo / card).is_file(), card


def test_shipped_judge_separates_held_out_demo_windows(repo, registry):
    """The judge never saw the demo records; on 40 of them it must beat chance clearly."""
    params = dict(next(e for e in _quickstart(repo)["evaluators"] if e["name"] == "fidelity")["params"]["judge_params"])
    judge = registry.create("classifier", "afib-reslstm", params).eval()
    demo = demo_windows(normalise=None)
    idx = np.concatenate([np.flatnonzero(demo.labels == c)[:20] for c in (0, 1)])
    with torch.no_grad():
        pred = judge(torch.as_tensor(demo.signals[idx])).argmax(1).numpy()
    acc = float((pred == demo.labels[idx]).mean())
    assert acc >= 0.7, f"shipped judge accuracy {acc:.2f} on 40 held-out demo windows"


def test_shipped_generator_transfers_demo_ecgs(repo, registry):
    q = _quickstart(repo)
    params = dict(q["generator"]["params"], checkpoint=q["generator"]["checkpoint"], device="cpu")
    gen = registry.create("generator", "diffstylets", params)
    demo = demo_windows(normalise=None)
    idx = np.array([np.flatnonzero(demo.labels == 0)[0], np.flatnonzero(demo.labels == 1)[0]])
    src = demo.select(idx)
    req = GenerationRequest(kind="transfer", labels=np.array([1, 0]), seeds=np.array([11, 12]), sources=src,
                            class_names=("N", "A"), options={"steps": 10})
    out = gen.generate(req)
    x = np.asarray(out.batch.signals)
    assert x.shape == (2, 1, 2500) and np.isfinite(x).all()
    assert list(out.batch.labels) == [1, 0] and out.batch.fs == 250.0
    # an ECG-scale signal (mV) on a new rhythm whose QRS complexes are the source's own
    from augframe.beats import detect_r_peaks

    s = np.asarray(src.signals)
    amp = lambda sig: np.array([np.median(np.abs(row[p])) for row, p in zip(sig, detect_r_peaks(sig, 250.0))])
    assert np.all((amp(x[:, 0]) / amp(s[:, 0]) > 0.8) & (amp(x[:, 0]) / amp(s[:, 0]) < 1.25))
    assert all(0.2 < np.ptp(x[i, 0]) < 20.0 for i in range(2))
    again = gen.generate(req)
    np.testing.assert_array_equal(np.asarray(again.batch.signals), x)
    # keeping the source's beat timing, the output is related to its source but not a copy of it
    kept = np.asarray(gen.generate(attrs.evolve(req, options={"steps": 10, "rhythm": "source"})).batch.signals)
    for i in range(2):
        r = np.corrcoef(kept[i, 0], s[i, 0])[0, 1]
        assert 0.0 < r < 0.999, r


def test_full_cinc_recipe_ships_its_record_split(repo):
    """afib-cinc-cpu-full reads a committed 2-fold record split: 934 evaluation records (308 A + 626 N)."""
    from augframe.data.splits import Split

    r = tomllib.loads((repo / "recipes/afib-cinc-cpu-full.toml").read_text())
    split = Split.load(repo / "recipes" / r["data"]["split"]["file"])  # relative to the recipe's folder
    assert split.k == r["data"]["split"]["k"] == 2 and split.by == "record"
    folds = np.bincount(list(split.group_fold.values()))
    assert folds[0] == 934 and folds[0] + folds[1] == 5788  # every N and A record of REFERENCE.csv
