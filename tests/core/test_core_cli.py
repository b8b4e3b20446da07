"""The `augframe` command, and the extension point proven with a throw-away third-party plugin package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from augframe.cli import build_parser, main

HERE = Path(__file__).resolve().parent


def _commands(parser, prefix=()):
    yield prefix
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield from _commands(sub, prefix + (name,))


def test_help_on_every_command(capsys):
    commands = list(_commands(build_parser()))
    assert {("plugins",), ("recipe", "check"), ("run",), ("generate",), ("evaluate",)} <= set(commands)
    for cmd in commands:
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--help"])
        assert exc.value.code == 0
        assert "usage: augframe" in capsys.readouterr().out


def test_recipe_check_prints_resolved_recipe_and_named_errors(tmp_path, capsys):
    from core_toys import RECIPE

    good = tmp_path / "r.toml"
    good.write_text(RECIPE.format(out="out", extra=""))
    assert main(["recipe", "check", str(good), "--no-plugins"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "attempts_per_source = 3" in out and "progress = false" in out
    bad = tmp_path / "bad.toml"
    bad.write_text(RECIPE.format(out="out", extra="").replace("[generator]\n", "[generator]\nparms = {}\n"))
    assert main(["recipe", "check", str(bad), "--no-plugins"]) == 2
    assert "unknown key generator.parms (did you mean 'params'?)" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


PLUGIN = '''
"""A third-party augframe plugin, written by the test."""
import augframe
from core_toys_copy import (ToySource, PhaseShiftGenerator, AmplitudeFilter, MomentsEvaluator)


@augframe.hookimpl
def augframe_register_sources(register):
    register("tp-source", ToySource, description="third-party toy records")


@augframe.hookimpl
def augframe_register_generators(register):
    register("tp-shift", PhaseShiftGenerator, description="third-party shift generator")


@augframe.hookimpl
def augframe_register_filters(register):
    register("tp-amplitude", AmplitudeFilter, description="third-party amplitude gate")


@augframe.hookimpl
def augframe_register_evaluators(register):
    register("tp-moments", MomentsEvaluator)
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "augframe-thirdparty-demo"
version = "9.8.7"

[project.entry-points.augframe]
thirdparty = "tp_plugin"
brokenparty = "tp_broken"

[tool.setuptools]
py-modules = ["tp_plugin", "tp_broken", "core_toys_copy"]
'''


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """Build and pip-install a third-party plugin package (entry points included) into a temp target."""
    root = tmp_path_factory.mktemp("thirdparty")
    src = root / "src"
    src.mkdir()
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "tp_plugin.py").write_text(PLUGIN)
    (src / "tp_broken.py").write_text("raise ImportError('tp_broken needs libfoo, which is not installed')\n")
    (src / "core_toys_copy.py").write_text((HERE / "core_toys.py").read_text())
    target = root / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--target", str(target), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *sys.path])}
    return target, env


def _augframe(args, env, cwd=None):
    return subprocess.run([sys.executable, "-m", "augframe.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd)


def test_third_party_plugin_is_listed_and_a_broken_one_is_named(installed_plugin):
    _, env = installed_plugin
    proc = _augframe(["plugins"], env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    tp = [ln for ln in lines if ln.startswith("thirdparty")]
    assert tp and "9.8.7" in tp[0]
    assert "generator  tp-shift  - third-party shift generator" in proc.stdout
    assert "filter     tp-amplitude" in proc.stdout and "source     tp-source" in proc.stdout
    broken = [ln for ln in lines if ln.startswith("brokenparty")]
    assert broken and "FAILED TO LOAD" in broken[0] and "tp_broken needs libfoo" in broken[0]
    rows = json.loads(_augframe(["plugins", "--json"], env).stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["thirdparty"]["error"] is None and by_name["brokenparty"]["error"].startswith("ImportError")
    blocked = _augframe(["plugins"], {**env, "AUGFRAME_DISABLE_PLUGINS": "brokenparty"})
    assert "FAILED" not in blocked.stdout and "thirdparty" in blocked.stdout
    assert [ln for ln in blocked.stdout.splitlines() if ln.startswith("brokenparty")][0].endswith(
        "BLOCKED: blocked by AUGFRAME_DISABLE_PLUGINS")  # reported as blocked, not missing
    only = _augframe(["plugins"], {**env, "AUGFRAME_PLUGINS": "thirdparty"})
    loaded = [ln.split()[0] for ln in only.stdout.splitlines() if ln and not ln.startswith(" ") and "BLOCKED" not in ln]
    assert loaded == ["thirdparty"]
    assert [ln for ln in only.stdout.splitlines() if ln.startswith("brokenparty")][0].endswith(
        "BLOCKED: not allowed by AUGFRAME_PLUGINS")


def test_a_recipe_runs_with_the_third_party_plugin(installed_plugin, tmp_path, capsys):
    from core_toys import RECIPE

    _, env = installed_plugin
    text = (RECIPE.format(out=str(tmp_path / "out").replace("\\", "/"), extra="count = 3")
            .replace('"toy-source"', '"tp-source"').replace('"phase-shift"', '"tp-shift"')
            .replace('"amplitude"', '"tp-amplitude"').replace('"moments"', '"tp-moments"'))
    text = text.replace("[data]", '[plugins]\nallow = ["thirdparty"]\n\n[data]')
    recipe = tmp_path / "tp.toml"
    recipe.write_text(text)
    proc = _augframe(["run", str(recipe), "--no-progress"], env)  # checks the recipe's plugin names first
    assert proc.returncode == 0, proc.stderr
    assert "N->A: 3 accepted in bank" in proc.stdout and "A->N: 3 accepted in bank" in proc.stdout
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert [p["name"] for p in run["plugins"]] == ["thirdparty"]
    assert json.loads((tmp_path / "out" / "eval" / "tp-moments.json").read_text())["metrics"]["n_synthetic"] == 6

    # without the plugin (in this process it is not installed) the same recipe names what is missing
    assert main(["recipe", "check", str(recipe)]) == 2
    assert "data.source = 'tp-source': no source named 'tp-source'" in capsys.readouterr().err


def test_generate_then_evaluate_commands(tmp_path, monkeypatch, capsys):
    from augframe import pipeline
    from core_toys import RECIPE, toy_registry

    monkeypatch.setattr(pipeline.Registry, "discover", classmethod(lambda cls, allow=None, block=None: toy_registry()))
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(out=str(tmp_path / "out").replace("\\", "/"), extra=""))
    assert main(["generate", str(recipe), "--count", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "N->A: 2 accepted in bank" in out and not (tmp_path / "out" / "eval").exists()
    assert main(["evaluate", str(recipe), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "evaluation moments" in captured.out
    assert "[evaluate] moments:" in captured.err and "[report]" in captured.err  # the CLI's log handler
    assert (tmp_path / "out" / "eval" / "moments.json").is_file() and (tmp_path / "out" / "report.html").is_file()
    assert main(["generate", str(recipe), "--count", "0"]) == 2
    assert "generation.count = 0 must be at least 1" in capsys.readouterr().err
