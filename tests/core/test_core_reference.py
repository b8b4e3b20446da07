"""docs/reference.md is what scripts/make_reference.py makes from the docstrings, and the value types
a plugin exchanges name every field in their docstrings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import attrs
import pytest

from augframe import judges, protocols

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("make_reference", REPO / "scripts" / "make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_page_is_current():
    page = REPO / "docs" / "reference.md"
    assert page.read_text(encoding="utf-8") == _script().render(), \
        "docs/reference.md is stale: run python scripts/make_reference.py"


@pytest.mark.parametrize("cls", [protocols.GenerationRequest, protocols.GeneratorInfo, protocols.Candidates,
                                 protocols.FilterResult, protocols.EvaluationResult, protocols.EvalContext,
                                 protocols.ExternalSet, judges.JudgeRef])
def test_value_types_name_every_field(cls):
    unnamed = [f.name for f in attrs.fields(cls) if f"``{f.name}``" not in (cls.__doc__ or "")]
    assert not unnamed, f"{cls.__name__}'s docstring does not name {unnamed}"
