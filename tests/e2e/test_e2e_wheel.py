"""A built wheel is complete: installed into a fresh venv, it runs the quickstart from any folder.

The wheel is built from a copy of the sources (no build/ or egg-info left in the repository), installed
with --no-deps into a venv that borrows the system's torch (--system-site-packages), and the demo recipe
runs from a temporary folder with no PYTHONPATH: every file it needs (demo data, shipped weights by
``pretrained:`` name, plugin entry points) must come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

IGNORE = shutil.ignore_patterns(".git", "runs", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                ".venv", ".cache")


def _sh(args: list, cwd: Path, env: dict, timeout: int = 300) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AUGFRAME_DISABLE_PLUGINS")}
    return env | {"OMP_NUM_THREADS": "1", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def test_wheel_installs_into_a_fresh_venv_and_runs_the_demo_anywhere(repo, tmp_path):
    env = _clean_env()
    src = tmp_path / "src"
    shutil.copytree(repo, src, ignore=IGNORE)
    _sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "wheels", src],
        tmp_path, env)
    wheel = next((tmp_path / "wheels").glob("augframe-*.whl"))
    venv = tmp_path / "venv"
    _sh([sys.executable, "-m", "venv", "--system-site-packages", venv], tmp_path, env)
    py, cli = venv / "bin" / "python", venv / "bin" / "augframe"
    _sh([py, "-m", "pip", "install", "--no-deps", "--force-reinstall", wheel], tmp_path, env)

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _sh([py, "-c", "import augframe, augframe_afib, augframe_diffstylets\n"
                 "from augframe.paths import shipped_weights\n"
                 "print(augframe.__file__); print(augframe_afib.__file__); print(sorted(shipped_weights().values()))"],
                work, env)
    assert str(repo) not in where and where.count(str(venv)) >= 4, where  # the wheel's copy, not the sources

    recipe = tomllib.loads((repo / "recipes" / "quickstart.toml").read_text())
    assert recipe["generator"]["checkpoint"].startswith("pretrained:")
    text = (repo / "recipes" / "quickstart.toml").read_text()
    assert "\ncount = 40 " in text
    (work / "demo.toml").write_text(text.replace("\ncount = 40 ", "\ncount = 2 "))  # a few seconds of generation
    _sh([cli, "recipe", "check", "demo.toml"], work, env)
    out = _sh([cli, "run", "demo.toml", "--no-progress", "--device", "cpu", "--output-dir", "out"],
              work, env)
    assert "report:" in out, out
    assert (work / "out" / "report.html").is_file() or any((work / "out").rglob("*.html")), out
