"""Recipes: strict parsing with key paths and suggestions; plugin names and params against a registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from augframe import recipe as R
from augframe.errors import RecipeError
from core_toys import RECIPE, toy_registry

ROOT = Path(__file__).resolve().parents[2]


def _text(**extra):
    return RECIPE.format(out="out", extra=extra.get("extra", ""))


def test_parse_fills_defaults_and_round_trips():
    r = R.loads(_text())
    assert r.run.seed == 7 and r.generator.fit is True and r.mix.synthetic_share == 0.33
    assert r.filters[0].params == {"max_ratio": 1.3} and r.evaluators[0].max_samples == 50
    assert r.generation.directions == ("N->A", "A->N") and r.generation.batch_size == 7
    assert r.plugins.allow is None and r.report.html is True
    assert R.loads(r.to_toml()) == r  # the printed, resolved recipe is itself a valid recipe
    assert r.evolve_run(seed=9, output_dir=None).run.seed == 9


@pytest.mark.parametrize("edit, message", [
    (("[generator]\n", "[generator]\nparms = {}\n"), "unknown key generator.parms (did you mean 'params'?)"),
    (("[mix]\n", "[mixx]\n"), "unknown recipe table 'mixx' (did you mean 'mix'?)"),
    (("seed = 7", "seed = \"7\""), "run.seed = \"7\" has the wrong type (a string); expected an integer"),
    (("batch_size = 7", "batch_size = true"), "generation.batch_size = true has the wrong type"),
    (("batch_size = 7", "batch_sise = 7"), "generation.batch_sise (did you mean 'batch_size'?)"),
    (("name = \"amplitude\"", "nam = \"amplitude\""), "unknown key filters[0].nam (did you mean 'name'?)"),
    (("synthetic_share = 0.33", "synthetic_share = 1.2"), "mix.synthetic_share = 1.2 must be in [0, 1)"),
    (("\"N->A\", ", "\"N-A\", "), "generation.directions[0] = 'N-A' must read 'SOURCE->TARGET'"),
    (("device = \"cpu\"", "device = \"gpu\""), "run.device = 'gpu'"),
    (("kind = \"transfer\"", "kind = \"transfr\""), "(did you mean 'transfer'?)"),
    (("attempts_per_source = 3", "attempts_per_source = 0"), "generation.attempts_per_source = 0 must be at least 1"),
    (("attempts_per_source = 3", "attempts_per_source = 4294967296"),
     "generation.attempts_per_source = 4294967296 is over 100"),
    (("attempts_per_source = 3", "attempts_per_source = 100\ncount = 20000"),
     "generation.count x attempts_per_source = 2000000 candidates per target is over 1,000,000"),
    (("[[evaluators]]", "[evaluators]"), "write each entry as [[evaluators]]"),
])
def test_bad_recipes_name_the_key(edit, message):
    text = _text().replace(*edit, 1)
    with pytest.raises(RecipeError) as err:
        R.loads(text)
    assert message in str(err.value)


def test_required_tables_and_files():
    with pytest.raises(RecipeError, match=r"no \[generator\] table"):
        R.loads("[data]\nsource = 'x'\n")
    with pytest.raises(RecipeError, match="missing the required key data.source"):
        R.loads("[data]\n[generator]\nname = 'g'\n[generation]\ndirections = ['N->A']\n")
    with pytest.raises(RecipeError, match="does not exist"):
        R.load("no/such/recipe.toml")
    with pytest.raises(RecipeError, match="not valid TOML"):
        R.loads("[data\n")
    with pytest.raises(RecipeError, match="generation.count is required"):
        R.loads("[data]\nsource='s'\n[generator]\nname='g'\n[generation]\nkind='sample'\nlabels=['A']\n")


@pytest.mark.parametrize("mask, message", [
    ('{ task = "forcast" }', "generation.mask.task = 'forcast'; use one of"),
    ('{ task = "gap", fracton = 0.3 }', "unknown key generation.mask.fracton for task 'gap' (did you mean 'fraction'?)"),
    ('{ task = "random_gaps", fraction = 0.3 }', "generation.mask.chunk_s is required"),
    ('{ task = "gap", fraction = 1.2 }', "generation.mask.fraction = 1.2 must be below 1"),
])
def test_completion_masks_are_checked(mask, message):
    text = "[data]\nsource = 's'\n[generator]\nname = 'g'\n[generation]\nkind = 'complete'\nmask = " + mask
    with pytest.raises(RecipeError) as err:
        R.loads(text)
    assert message in str(err.value)
    assert R.loads(text.replace(mask, '{ task = "forecast", horizon_s = 2.0 }')).generation.mask["horizon_s"] == 2.0


def test_plugin_names_and_params_are_checked_against_the_registry():
    reg = toy_registry()
    R.check_plugins(R.loads(_text()), reg)
    cases = [
        (("name = \"phase-shift\"", "name = \"phase-shfit\""), "generator.name = 'phase-shfit'",
         "did you mean 'phase-shift'"),
        (("name = \"amplitude\"", "name = \"amplitud\""), "filters[0].name = 'amplitud'", "did you mean 'amplitude'"),
        (("name = \"moments\"", "name = \"momets\""), "evaluators[0].name", "did you mean 'moments'"),
        (("max_ratio = 1.3", "max_ratoi = 1.3"), "filters[0].params.max_ratoi", "did you mean 'max_ratio'"),
        (("{ scale = 0.3 }", "{ scael = 0.3 }"), "generator.params.scael", "did you mean 'scale'"),
        (("source = \"toy-source\"", "source = \"toy-sorce\""), "data.source = 'toy-sorce'", "toy-source"),
    ]
    for edit, where, hint in cases:
        with pytest.raises(RecipeError) as err:
            R.check_plugins(R.loads(_text().replace(*edit, 1)), reg)
        assert where in str(err.value) and hint in str(err.value), str(err.value)
    with pytest.raises(RecipeError, match="generator.checkpoint"):
        R.check_plugins(R.loads(_text().replace("fit = true", "fit = true\ncheckpoint = \"w.safetensors\"")), reg)


def test_shipped_recipes_parse():
    for path in sorted((ROOT / "recipes").glob("*.toml")):
        R.load(path)
