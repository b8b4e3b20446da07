"""Deriving the 12 leads from I, II, V1-V6, checked on real PTB-XL records."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augframe.errors import ValidationError
from augframe.signals import STANDARD_LEADS
from augframe_sssd.leads import INDEPENDENT_LEADS, independent_leads, to_twelve_leads


def test_derivation_reproduces_recorded_ptbxl_leads(ptbxl_batch):
    x = ptbxl_batch.numpy()
    pos = independent_leads(ptbxl_batch.leads, "PTB-XL")
    derived = to_twelve_leads(torch.from_numpy(x[:, pos])).numpy()
    assert derived.shape == x.shape
    # the independent leads pass through unchanged, in standard order
    for name in INDEPENDENT_LEADS:
        j = STANDARD_LEADS.index(name)
        assert np.array_equal(derived[:, j], x[:, j])
    # the derived limb leads match the recorded ones up to PTB-XL's quantisation (< 2 % of RMS)
    limb_rms = np.sqrt(np.mean(x[:, :6] ** 2, axis=(1, 2)))
    for name in ("III", "aVR", "aVL", "aVF"):
        j = STANDARD_LEADS.index(name)
        err = np.sqrt(np.mean((derived[:, j] - x[:, j]) ** 2, axis=1)) / limb_rms
        assert err.max() < 0.02, name


def test_exact_relations_on_random_leads():
    x8 = torch.randn(3, 8, 50, generator=torch.Generator().manual_seed(0))
    x12 = to_twelve_leads(x8)
    lead = dict(zip(STANDARD_LEADS, x12.unbind(1)))
    assert torch.allclose(lead["III"], lead["II"] - lead["I"])
    assert torch.allclose(lead["aVR"], -(lead["I"] + lead["II"]) / 2)
    assert torch.allclose(lead["aVL"], lead["I"] - lead["II"] / 2)
    assert torch.allclose(lead["aVF"], lead["II"] - lead["I"] / 2)
    # exact in real numbers; in float32 each of the ~6 roundings errs by <= eps/2 of |I| + |II|
    bound = 4 * torch.finfo(torch.float32).eps * (lead["I"].abs() + lead["II"].abs())
    assert ((lead["aVR"] + lead["aVL"] + lead["aVF"]).abs() <= bound).all()


def test_missing_independent_leads_are_named():
    with pytest.raises(ValidationError, match=r"missing \['V5', 'V6'\]"):
        independent_leads(STANDARD_LEADS[:10], "training data")
