"""Paths in recipes: shipped weights by name, relative paths against the recipe's folder, checked."""

from __future__ import annotations

import pytest

from augframe import recipe as recipes
from augframe.cli import main
from augframe.errors import CheckpointError
from augframe.paths import resolve, shipped_weights

RECIPE = """
[data]
source = "demo"
split = {{ test_fraction = 0.25, file = "splits/s.json" }}
[generator]
name = "diffstylets"
checkpoint = "{ckpt}"
[generation]
directions = ["N->A"]
[[evaluators]]
name = "fidelity"
params = {{ judge_params = {{ checkpoint = "pretrained:afib-reslstm-w025-cinc2017" }} }}
"""


def test_pretrained_names_resolve_to_shipped_safetensors():
    shipped = shipped_weights()
    assert {"diffstylets-w16-cinc2017", "afib-reslstm-w025-cinc2017"} <= set(shipped)
    assert resolve("pretrained:diffstylets-w16-cinc2017") == shipped["diffstylets-w16-cinc2017"]
    assert all(p.is_file() and p.suffix == ".safetensors" for p in shipped.values())
    with pytest.raises(CheckpointError, match="pretrained:afib-reslstm-w025-cinc2017"):  # lists what is shipped
        resolve("pretrained:no-such-model")


def test_relative_paths_resolve_against_the_recipe_folder(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "project"
    (folder / "weights").mkdir(parents=True)
    (folder / "splits").mkdir()
    (folder / "r.toml").write_text(RECIPE.format(ckpt="weights/g.safetensors"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = recipes.load("../project/r.toml")
    assert r.generator.checkpoint == str(folder / "weights" / "g.safetensors")
    assert r.data.split["file"] == str(folder / "splits" / "s.json")
    assert r.evaluators[0].params["judge_params"]["checkpoint"] == "pretrained:afib-reslstm-w025-cinc2017"
    assert main(["recipe", "check", "--no-plugins", "../project/r.toml"]) != 0  # the weights file is missing
    err = capsys.readouterr().err
    assert "generator.checkpoint = 'weights/g.safetensors'" in err and f"recipe's folder {folder}" in err
    (folder / "weights" / "g.safetensors").write_bytes(b"")
    assert main(["recipe", "check", "--no-plugins", "../project/r.toml"]) == 0


def test_judge_safetensors_must_match_the_given_settings():
    from augframe_afib.classifiers import make_afib_reslstm

    with pytest.raises(CheckpointError, match="width=0.5"):
        make_afib_reslstm(width=0.5, depth=[1, 1, 1, 1], checkpoint="pretrained:afib-reslstm-w025-cinc2017")
