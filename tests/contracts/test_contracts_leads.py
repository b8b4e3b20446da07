import numpy as np
import pytest
import torch

from augframe import ECGBatch, STANDARD_LEADS, ValidationError
from augframe.leads import INDEPENDENT_LEADS, residuals, to_twelve_leads


def test_twelve_leads_obey_relations_numpy_and_torch():
    x = np.random.default_rng(0).normal(size=(3, 8, 200)).astype(np.float32)
    full = to_twelve_leads(x)
    assert full.shape == (3, 12, 200)
    assert np.allclose(full[:, STANDARD_LEADS.index("III")], x[:, 1] - x[:, 0])
    assert torch.allclose(to_twelve_leads(torch.from_numpy(x)), torch.from_numpy(full))
    res = residuals(ECGBatch(full, 100, STANDARD_LEADS))
    assert set(res) == {"III", "aVR", "aVL", "aVF"} and max(v.max() for v in res.values()) < 1e-6


def test_broken_relation_is_measured_and_bad_input_named():
    x = np.random.default_rng(1).normal(size=(2, 8, 200)).astype(np.float32)
    full = to_twelve_leads(x)
    full[1, STANDARD_LEADS.index("aVF")] *= -1
    res = residuals(ECGBatch(full, 100, STANDARD_LEADS))
    assert res["aVF"][0] < 1e-6 < 0.5 < res["aVF"][1]
    with pytest.raises(ValidationError, match="independent leads"):
        to_twelve_leads(x[:, :7])
    with pytest.raises(ValidationError, match="need leads I and II"):
        residuals(ECGBatch(full[:, 6:], 100, STANDARD_LEADS[6:]))
    assert INDEPENDENT_LEADS[:2] == ("I", "II")
