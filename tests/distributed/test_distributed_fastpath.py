"""GPU fast-path helpers: on the CPU they fall back explicitly and compute the same thing."""

from __future__ import annotations

import logging

import pytest
import torch

from augframe.distributed_fastpath import DevicePrefetcher, GraphedStep, compile_module, configure_cuda, to_device
from augframe.errors import ValidationError


def _ddim_like_step(x: torch.Tensor, k: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """One deterministic update with the schedule indexed by a device tensor (graph-safe)."""
    a_t, a_prev = ab[k], ab[k + 1]
    eps = torch.tanh(x)  # stands in for the CFG-fused network call
    x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


def test_graphed_step_falls_back_on_cpu_and_says_so(caplog):
    ab = torch.linspace(0.2, 0.99, 11)
    x = torch.randn(4, 1, 32)
    with caplog.at_level(logging.INFO, logger="augframe.distributed_fastpath"):
        step = GraphedStep(lambda x, k: _ddim_like_step(x, k, ab), (x, torch.tensor(0)))
    assert not step.graphed and "need a CUDA device" in step.reason and "cpu" in step.reason
    assert "running eagerly" in caplog.text
    y_eager, y = x.clone(), x.clone()
    for k in range(10):
        y_eager = _ddim_like_step(y_eager, torch.tensor(k), ab)
        y = step(y, torch.tensor(k))
    torch.testing.assert_close(y, y_eager, rtol=0, atol=0)
    with pytest.raises(ValidationError, match="one GraphedStep per shape"):
        step(torch.randn(3, 1, 32), torch.tensor(0))
    assert "disabled" in GraphedStep(torch.neg, (x,), enabled=False).reason
    with pytest.raises(ValidationError, match="example tensors"):
        GraphedStep(torch.neg, (1.0,))


def test_host_to_device_helpers_are_free_on_cpu():
    x, y = torch.randn(2, 3), torch.arange(2)
    moved = to_device({"x": x, "pair": (x, y), "name": "a"}, "cpu")
    assert moved["x"] is x and moved["pair"][1] is y and moved["name"] == "a"
    batches = [(torch.full((2,), float(i)), i) for i in range(3)]
    assert list(DevicePrefetcher(batches, "cpu")) == batches
    assert configure_cuda("cpu") == {"device": "cpu", "changed": False}
    net = torch.nn.Linear(2, 2)
    assert compile_module(net, "cpu") is net


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: checks the captured graph itself")
def test_graphed_step_on_cuda_matches_eager():  # pragma: no cover - runs where a GPU is present
    ab = torch.linspace(0.2, 0.99, 11, device="cuda")
    x = torch.randn(4, 1, 32, device="cuda")
    step = GraphedStep(lambda x, k: _ddim_like_step(x, k, ab), (x, torch.tensor(0, device="cuda")))
    assert step.graphed
    y_eager, y = x.clone(), x.clone()
    for k in range(10):
        kk = torch.tensor(k, device="cuda")
        y_eager = _ddim_like_step(y_eager, kk, ab)
        y = step(y, kk).clone()
    torch.testing.assert_close(y, y_eager)
    moved = to_device(torch.randn(3), "cuda")
    assert moved.device.type == "cuda"
