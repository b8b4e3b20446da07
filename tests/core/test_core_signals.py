"""ECGBatch and request contracts: each bad input of the issue raises its named error; no needless copies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augframe import ECGBatch, GenerationRequest
from augframe.errors import ValidationError
from augframe.plugins import Registry
from augframe.errors import PluginError


def _x(n=2, leads=1, samples=100):
    return np.zeros((n, leads, samples), np.float32)


@pytest.mark.parametrize("kwargs, message", [
    ({"signals": np.zeros((2, 100), np.float32)}, "expected [N, leads, samples]"),
    ({"signals": np.full((1, 1, 10), np.nan, np.float32)}, "NaN or Inf"),
    ({"signals": np.full((1, 1, 10), np.inf, np.float32)}, "NaN or Inf"),
    ({"fs": 0.0}, "ECGBatch.fs=0.0 must be a positive"),
    ({"fs": -250.0}, "must be a positive sampling rate"),
    ({"leads": ("I", "II")}, "ECGBatch.leads has 2 names for 1 leads"),
    ({"leads": ("XII",)}, "not a standard 12-lead name"),
    ({"labels": [0, 1, 2], "class_names": ("N", "A")}, "ECGBatch.labels has 3 entries for 2"),
    ({"labels": [0, 5], "class_names": ("N", "A")}, "outside 0..1"),
    ({"ids": ["a"]}, "ECGBatch.ids has 1 entries for 2"),
    ({"meta": {"age": [1, 2, 3]}}, "ECGBatch.meta['age'] has 3 entries"),
])
def test_bad_batches_raise_named_errors(kwargs, message):
    args = {"signals": _x(), "fs": 250.0, "leads": ("II",), **kwargs}
    with pytest.raises(ValidationError) as err:
        ECGBatch(**args)
    assert message in str(err.value)


def test_numpy_torch_moves_share_memory():
    x = _x()
    b = ECGBatch(x, 250.0, ("ii",))
    assert b.leads == ("II",) and b.numpy() is x
    t = b.torch()
    assert t.data_ptr() == x.ctypes.data  # CPU tensor view of the numpy array
    back = b.to("cpu").to_numpy()
    assert back.numpy().ctypes.data == x.ctypes.data
    assert torch.is_tensor(b.to("cpu").signals)


def test_bad_requests_and_plugin_lookups():
    b = ECGBatch(_x(), 250.0, ("II",), labels=[0, 1], class_names=("N", "A"))
    with pytest.raises(ValidationError, match="kind='morph'"):
        GenerationRequest("morph", np.zeros(2), [1, 2])
    with pytest.raises(ValidationError, match="seeds has 1 entries for 2"):
        GenerationRequest("sample", np.zeros(2), [1])
    with pytest.raises(ValidationError, match="needs sources"):
        GenerationRequest("transfer", np.zeros(2), [1, 2])
    with pytest.raises(ValidationError, match="mask has shape"):
        GenerationRequest.complete(b, np.ones((2, 1, 5), bool), seed=0)
    with pytest.raises(PluginError, match="no generator named 'nope'"):
        Registry().get("generator", "nope")
    with pytest.raises(PluginError, match="unknown plugin kind 'generatr'"):
        Registry().names("generatr")
