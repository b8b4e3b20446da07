"""The CLI under hostile recipes and environments: exit 2 for usage errors, 1 for runtime failures,
always one line on stderr, never a traceback; `recipe check` refuses what `run` would refuse."""

from __future__ import annotations

import errno
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from augframe import pipeline
from augframe import recipe as R
from augframe.cli import main
from augframe.errors import AugframeError, RecipeError
from augframe.plugins import Registry
from core_toys import RECIPE, toy_registry


@pytest.fixture()
def toys(monkeypatch):
    monkeypatch.setattr(Registry, "discover", classmethod(lambda cls, *a, **k: toy_registry()))


def _write(path, out, extra="", replace=()):
    text = RECIPE.format(out=str(out).replace("\\", "/"), extra=extra)
    for old, new in replace:
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)
    return path


def _call(capsys, *argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


def _one_error_line(err):
    lines = [ln for ln in err.splitlines() if not ln.startswith("[")]  # stage logs start with '['
    assert len(lines) == 1 and lines[0].startswith("augframe: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_a_changed_seed_on_the_cli_is_refused_not_mixed(tmp_path, capsys, toys):
    recipe = _write(tmp_path / "r.toml", tmp_path / "out")
    code, _ = _call(capsys, "generate", recipe, "--no-progress")
    assert code == 0
    code, err = _call(capsys, "generate", recipe, "--seed", 1, "--no-progress")
    assert code == 1 and "seed: 7 -> 1" in _one_error_line(err)


@pytest.mark.parametrize("extra, replace, named", [
    ("", [("split = { test_fraction = 0.25 }", "split = { test_fractoin = 0.25 }")], "data.split.test_fractoin"),
    ("", [("split = { test_fraction = 0.25 }", "preprocessing = { sampling_rat = 250 }")],
     "data.preprocessing.sampling_rat"),
    ("", [("seed = 7", "seed = -1")], "run.seed"),
    ("", [("seed = 7", "seed = 4294967296")], "run.seed"),
    ("", [('name = "toy"', 'name = ".."')], "run.name"),
    ("", [('name = "toy"', 'name = "toy\\n"')], "run.name"),
    ("", [('output_dir = "', 'output_dir = "" # ')], "run.output_dir is empty"),
    ("", [('output_dir = "', 'output_dir = "' + "x" * 300 + '/')], "255"),
    ("", [("params = { scale = 0.3 }", 'params = { scale = "big" }')], "'scale'"),
    ("", [("params = { max_ratio = 1.3 }", "params = { max_ratoi = 1.3 }")], "max_ratoi"),
    ("", [('"N->A", "A->N"', '"N->A", "N -> A"')], "twice"),
])
def test_recipe_check_refuses_what_run_refuses(tmp_path, capsys, toys, extra, replace, named):
    recipe = _write(tmp_path / "r.toml", tmp_path / "out", extra, replace)
    code, err = _call(capsys, "recipe", "check", recipe)
    assert code == 2 and named in _one_error_line(err)
    code, err = _call(capsys, "run", recipe, "--no-progress")
    assert code == 2 and named in _one_error_line(err)


def test_bad_overrides_and_hostile_files(tmp_path, capsys, toys):
    recipe = _write(tmp_path / "r.toml", tmp_path / "out")
    for argv, named in ((("--device", "bogus"), "run.device"), (("--seed", "-1"), "run.seed"),
                        (("--output-dir", os.devnull), "not a folder")):
        code, err = _call(capsys, "run", recipe, *argv)
        assert code == 2 and named in _one_error_line(err)
    (tmp_path / "file").write_text("x")
    code, err = _call(capsys, "run", recipe, "--output-dir", tmp_path / "file")
    assert code == 2 and "not a folder" in _one_error_line(err)
    (tmp_path / "bin.toml").write_bytes(b"[run]\nname = \"\xff\"\n")
    code, err = _call(capsys, "recipe", "check", tmp_path / "bin.toml")
    assert code == 2 and "not UTF-8" in _one_error_line(err)
    (tmp_path / "deep.toml").write_text("x = " + "[" * 5000 + "]" * 5000)
    code, err = _call(capsys, "recipe", "check", tmp_path / "deep.toml")
    assert code == 2 and "too deeply" in _one_error_line(err)
    code, err = _call(capsys, "recipe", "check", tmp_path)
    assert code == 2 and "is a folder" in _one_error_line(err)
    with pytest.raises(RecipeError, match="NUL"):
        R.loads(RECIPE.format(out="a\\u0000b", extra=""))


def test_disk_full_is_one_line_and_exit_1(tmp_path, capsys, toys, monkeypatch):
    from augframe import atomic

    recipe = _write(tmp_path / "r.toml", tmp_path / "out")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "out" / "bank"))

    monkeypatch.setattr(atomic, "write_npy", full)
    code, err = _call(capsys, "generate", recipe, "--no-progress")
    assert code == 1 and "No space left on device" in _one_error_line(err)


def test_evaluate_on_a_read_only_finished_run(tmp_path, capsys, toys, monkeypatch):
    """Every write fails with EROFS (root ignores chmod, so the file system is simulated): evaluate
    does not touch the unchanged recipe.toml and ends with one line and exit 1."""
    import contextlib

    from augframe import atomic

    recipe = _write(tmp_path / "r.toml", tmp_path / "out")
    assert _call(capsys, "run", recipe, "--no-progress")[0] == 0
    written = []

    @contextlib.contextmanager
    def read_only(path, mode="wb", **k):
        written.append(str(path))
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        yield  # pragma: no cover

    monkeypatch.setattr(atomic, "atomic_open", read_only)
    code, err = _call(capsys, "evaluate", recipe, "--no-progress")
    assert code == 1 and "Read-only file system" in _one_error_line(err)
    assert not any(w.endswith("recipe.toml") for w in written) and written


def test_an_unchanged_recipe_toml_is_not_rewritten(tmp_path):
    r = R.loads(RECIPE.format(out=str(tmp_path / "out"), extra=""))
    pipeline.run(r, registry=toy_registry(), stages=("fit", "generate"))
    before = (tmp_path / "out" / "recipe.toml").stat().st_mtime_ns
    pipeline.run(r, registry=toy_registry(), stages=("evaluate",))
    assert (tmp_path / "out" / "recipe.toml").stat().st_mtime_ns == before


# --- property: a recipe that checks clean runs without a raw exception ---------------------------
_KEYS = ["run.seed", "run.name", "run.output_dir", "run.device", "data.split", "data.preprocessing",
         "generator.params", "generation.count", "generation.attempts_per_source", "generation.batch_size",
         "generation.directions", "generation.options", "mix.synthetic_share", "filters.0.min_score",
         "filters.0.params"]
_VALUES = st.one_of(st.integers(-2, 5), st.just(2**32), st.floats(allow_nan=True), st.text(max_size=5),
                    st.booleans(), st.just({"test_fraction": 0.5}), st.just({"k": "3"}), st.just({"by": "ward"}),
                    st.just({"max_ratio": "x"}), st.just({"scale": 2}), st.just(["N->N"]), st.just(["N->A", "N->A"]),
                    st.just({}), st.just([]))


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(_KEYS), value=_VALUES)
def test_checked_recipes_run_without_raw_exceptions(tmp_path_factory, key, value):
    import tomllib

    out = tmp_path_factory.mktemp("run")
    raw = tomllib.loads(RECIPE.format(out=str(out / "o"), extra=""))
    parts, node = key.split("."), raw
    for p in parts[:-1]:
        node = node[p] if isinstance(node, dict) else node[int(p)]
    node[parts[-1]] = value
    try:
        recipe = R.parse(raw)
        R.check_plugins(recipe, toy_registry())
    except RecipeError:
        return
    try:
        pipeline.run(recipe, registry=toy_registry(), stages=("fit", "generate"), progress=False)
    except AugframeError as exc:  # data-dependent refusals (e.g. a class the data lacks) are named errors
        assert not isinstance(exc, RecipeError) or "data's classes" in str(exc) or "generation" in str(exc), exc


def test_an_allow_list_that_matches_nothing_is_named(capsys, monkeypatch):
    monkeypatch.setenv("AUGFRAME_PLUGINS", "nope")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "BLOCKED: not allowed by AUGFRAME_PLUGINS" in out and "are installed" not in out


@pytest.mark.parametrize("where, table, named", [
    ("generator", '[generator]\nname = "diffstylets"\nparams = { sampler = { stepz = 5 } }', "stepz"),
    ("evaluator", '[[evaluators]]\nname = "fidelity"\nparams = { judge_params = { widht = 3 } }', "widht"),
])
def test_nested_parameter_typos_are_named_by_recipe_check(where, table, named):
    """Nested tables are checked through the factory's validate_params, with the installed plugins."""
    text = ('[data]\nsource = "cinc2017"\nparams = { root = "x" }\n'
            '[generation]\ndirections = ["N->A"]\n')
    text += table if where == "generator" else '[generator]\nname = "diffstylets"\n' + table
    recipe = R.loads(text)
    with pytest.raises(RecipeError, match=named):
        R.check_plugins(recipe, Registry.discover())
