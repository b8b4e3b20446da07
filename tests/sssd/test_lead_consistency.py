"""The lead-consistency filter and evaluator on real PTB-XL records and corrupted copies."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.errors import ValidationError
from augframe.plugins import Registry
from augframe.protocols import Filter
from augframe.signals import STANDARD_LEADS
from augframe_leads.consistency import LeadConsistencyFilter, lead_residuals


@pytest.fixture(scope="module")
def registry():
    return Registry.discover()


def _lead(name):
    return STANDARD_LEADS.index(name)


def test_registered_and_satisfies_the_filter_protocol(registry):
    f = registry.create("filter", "lead-consistency", {"threshold": 0.05})
    assert isinstance(f, Filter) and f.name == "lead-consistency"
    assert "lead-consistency" in registry.names("evaluator")


def test_real_ptbxl_records_pass(ptbxl_batch):
    result = LeadConsistencyFilter().score(ptbxl_batch)
    assert result.accept.all()
    assert (result.scores > 0.5).all()
    assert all(r == () for r in result.reasons)
    assert np.nanmax(lead_residuals(ptbxl_batch).worst()) < 0.02


@pytest.mark.parametrize("corruption, lead", [
    ("swap_I_II", "III"),
    ("invert_aVR", "aVR"),
    ("scale_aVL", "aVL"),
    ("noise_aVF", "aVF"),
    ("foreign_III", "III"),
])
def test_corrupted_records_fail_with_the_lead_named(ptbxl_batch, corruption, lead):
    x = ptbxl_batch.numpy().copy()
    rng = np.random.default_rng(0)
    if corruption == "swap_I_II":
        x[:, [0, 1]] = x[:, [1, 0]]
    elif corruption == "invert_aVR":
        x[:, _lead("aVR")] *= -1
    elif corruption == "scale_aVL":
        x[:, _lead("aVL")] *= 1.5
    elif corruption == "noise_aVF":
        x[:, _lead("aVF")] += rng.normal(0, 0.1, x[:, 0].shape)
    else:  # lead III taken from another record: as if limb leads were generated independently
        x[:, _lead("III")] = np.roll(x[:, _lead("III")], 1, axis=0)
    bad = ptbxl_batch.with_signals(x.astype(np.float32))
    result = LeadConsistencyFilter().score(bad)
    rejected = ~result.accept
    assert rejected.mean() > 0.9, corruption
    named = [any(r.startswith(f"{lead} deviates") for r in reasons) for reasons in result.reasons]
    assert np.array(named)[rejected].all()
    assert (result.scores[rejected] < 0.5).all()


def test_missing_leads_are_a_clear_reason(ptbxl_batch):
    partial = ptbxl_batch.select_leads(["I", "II", "III", "V1"])
    strict = LeadConsistencyFilter().score(partial)
    assert not strict.accept.any()
    assert "['aVR', 'aVL', 'aVF'] missing (rejected)" in strict.reasons[0][0]
    lenient = LeadConsistencyFilter(require_all=False).score(partial)
    assert lenient.accept.all()  # Einthoven holds on real data; the Goldberger relations were not checkable
    assert "not checked" in lenient.reasons[0][0]
    single = LeadConsistencyFilter(require_all=False).score(ptbxl_batch.select_leads(["II"]))
    assert not single.accept.any() and "(rejected)" in single.reasons[0][0]


def test_flat_ecg_is_rejected(ptbxl_batch):
    flat = ptbxl_batch.select([0, 1]).with_signals(np.zeros((2, 12, 1000), np.float32))
    result = LeadConsistencyFilter().score(flat)
    assert not result.accept.any() and "flat" in result.reasons[0][0]


def test_bad_threshold():
    with pytest.raises(ValidationError, match="threshold"):
        LeadConsistencyFilter(threshold=0)


def test_evaluator_compares_residual_distributions(registry, ptbxl_batch):
    ev = registry.create("evaluator", "lead-consistency", {})
    x = ptbxl_batch.numpy().copy()
    x[:, _lead("aVL")] *= 1.5
    out = ev.evaluate(ptbxl_batch, ptbxl_batch.with_signals(x))
    assert out.metrics["real_within_threshold"] == 1.0
    assert out.metrics["synthetic_within_threshold"] < 0.1
    assert out.metrics["synthetic_goldberger_aVL_median"] > 10 * out.metrics["real_goldberger_aVL_median"]
    assert len(out.tables["residuals"].rows) == 8
