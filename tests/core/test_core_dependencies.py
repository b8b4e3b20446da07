"""What the package imports is declared in pyproject.toml; torch-ecg is only imported when used."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# import name -> distribution name, where they differ
DIST = {"sklearn": "scikit-learn", "torch_ecg": "torch-ecg", "attr": "attrs"}


def _sources() -> list[Path]:
    return sorted((REPO / "augframe").rglob("*.py")) + sorted((REPO / "plugins").rglob("augframe_*/**/*.py"))


def _imported_top_levels() -> set[str]:
    names = set()
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and not n.startswith("augframe")}


def test_every_third_party_import_is_a_declared_dependency():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {re.split(r"[<>=;\[ ]", d, maxsplit=1)[0].strip().lower() for d in deps}
    missing = {n for n in _imported_top_levels() if DIST.get(n, n).lower() not in declared}
    assert not missing, f"imported but not in [project].dependencies: {sorted(missing)}"


def test_torch_ecg_is_not_imported_by_importing_the_package_and_plugins():
    code = ("import sys, importlib, pkgutil\n"
            "names = ('augframe', 'augframe_afib', 'augframe_diffstylets', 'augframe_plausibility',\n"
            "         'augframe_diffecg', 'augframe_sssd', 'augframe_leads')\n"
            "for pkg in map(importlib.import_module, names):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        importlib.import_module(m.name)\n"
            "print('torch_ecg' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
