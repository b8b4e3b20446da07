"""First-party plugins, built through the registry from their entry points, pass the conformance kit.

The cheap ones run here (filters, the demo source, the lead-consistency evaluator); generators are
checked in their own areas' tests with trained tiny models (tests/diffstylets, tests/sssd).
"""

from __future__ import annotations

import warnings

import pytest

from augframe.plugins import Registry
from augframe.signals import STANDARD_LEADS
from augframe.testing import check_registered, make_ecg_batch


@pytest.fixture(scope="module")
def registry():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Registry.discover()


SINGLE = dict(fs=250.0, seconds=10.0, leads=("I",))
TWELVE = dict(fs=250.0, seconds=4.0, leads=STANDARD_LEADS)


@pytest.mark.parametrize("kind, name, params, kwargs", [
    ("filter", "plausibility", {}, {"candidates": make_ecg_batch(6, **SINGLE)}),
    ("filter", "lead-consistency", {}, {"candidates": make_ecg_batch(4, **TWELVE)}),
    ("source", "demo", {"classes": ["N", "A"]}, {}),
    ("evaluator", "lead-consistency", {}, {"real": make_ecg_batch(6, **TWELVE),
                                           "synthetic": make_ecg_batch(6, seed=5, **TWELVE)}),
])
def test_first_party_plugin_conforms(registry, kind, name, params, kwargs):
    assert name in registry.names(kind), f"{kind} {name!r} is not installed: {registry.load_errors}"
    report = check_registered(registry, kind, name, params, **kwargs)
    assert report.passed
