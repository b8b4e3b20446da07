"""Multi-process training equals one-process training with the same global batch (gloo, 2 CPU ranks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import distributed_workers as W
from augframe.distributed import (
    DistContext, TrainPlan, all_reduce_metrics, convert_batchnorm, cross_rank_batchnorm_class, epoch_sample_seeds,
    init_distributed, rank_sampler, train_steps, wrap_model,
)
from augframe.errors import CheckpointError, ValidationError
from augframe.training import TrainLog

ATOL = 2e-5


def _assert_close(a: dict, b: dict, atol: float = ATOL) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
        else:
            assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def two_rank(two_rank_dir):
    """The 2-rank gloo job: 3 steps, checkpoint, resume to 8 steps; plus a run without sync BN."""
    workdir = two_rank_dir / "train"
    return workdir, torch.load(workdir / "two_rank.pt", weights_only=True)


@pytest.fixture(scope="module")
def one_rank_8(tmp_path_factory):
    return W.train(tmp_path_factory.mktemp("single"), 8, None)


def test_two_ranks_equal_one_rank_same_global_batch(two_rank, one_rank_8):
    _, out = two_rank
    # weights, BatchNorm running statistics (synchronised across ranks) and the EMA after 8 steps
    _assert_close(out["final"], one_rank_8)


def test_two_rank_checkpoint_resumes_on_one_rank(two_rank, one_rank_8, tmp_path):
    workdir, _ = two_rank
    state = tmp_path / "resume.pt"
    state.write_bytes((workdir / "mid.pt").read_bytes())
    resumed = W.train(tmp_path, 8, state)
    _assert_close(resumed, one_rank_8)
    log = TrainLog.read(tmp_path / "log-1.jsonl")
    assert [r["global_step"] for r in log] == [4, 6, 8]  # continued from step 3, not from 0


def test_plain_batchnorm_breaks_equality(two_rank, tmp_path):
    """The negative control: per-rank BatchNorm statistics make 2 ranks differ from 1 rank."""
    _, out = two_rank
    single = W.train(tmp_path, 3, None)
    diff = max((out["plain_bn_3"][k] - single[k]).abs().max().item() for k in single if single[k].is_floating_point())
    assert diff > 100 * ATOL


def test_comm_meter_counts_every_gradient_once_per_step(two_rank):
    _, out = two_rank
    assert out["comm"]["bytes_per_step"] == 4 * out["comm"]["params"]  # fp32 gradients of all parameters


def test_cross_rank_batchnorm_is_batchnorm_on_one_process():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3), torch.nn.BatchNorm1d(4))
    ref = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3), torch.nn.BatchNorm1d(4))
    ref.load_state_dict(net.state_dict())
    weight = net[1].weight
    conv = convert_batchnorm(net, "cpu")
    assert isinstance(conv[1], cross_rank_batchnorm_class()) and conv[1].weight is weight
    assert conv.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(5, 2, 20)
    torch.testing.assert_close(conv(x), ref(x))
    torch.testing.assert_close(conv[1].running_var, ref[1].running_var)


def test_one_process_context_without_torchrun_env(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    ctx = init_distributed("cpu")
    assert ctx == DistContext() and ctx.is_main and not ctx.active
    model = torch.nn.Linear(2, 2)
    assert wrap_model(model, ctx) is model
    assert all_reduce_metrics(ctx, {"loss": torch.tensor(6.0)}, 3) == {"loss": 2.0}


def test_missing_rank_variable_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValidationError, match="RANK.*torchrun"):
        init_distributed("cpu")


def test_rank_samplers_partition_each_global_batch():
    one = list(rank_sampler(40, 8, DistContext(), seed=3))
    two = [list(rank_sampler(40, 8, DistContext(rank=r, world_size=2), seed=3)) for r in range(2)]
    assert [a + b for a, b in zip(*two)] == one
    with pytest.raises(ValidationError, match="multiple of 3"):
        rank_sampler(40, 8, DistContext(rank=0, world_size=3))


def test_sample_seeds_depend_on_epoch_and_index_only():
    a, b = epoch_sample_seeds(5, 0, 100), epoch_sample_seeds(5, 0, 40)
    assert np.array_equal(a[:40], b)
    assert not np.array_equal(a, epoch_sample_seeds(5, 1, 100))


def test_resume_with_another_global_batch_is_refused(tmp_path):
    state = tmp_path / "s.pt"
    W.train(tmp_path, 2, state)
    model = W.make_model()
    opt = torch.optim.AdamW(model.parameters())
    with pytest.raises(CheckpointError, match="global_batch=8.*asks for 16"):
        train_steps(DistContext(), model, opt, W.cache_windows(), W.denoise_loss, TrainPlan(global_batch=16),
                    state_path=state)


def test_one_process_loop_options_lr_budget_cap_config_and_log(tmp_path):
    """lr per global step, steps per epoch capped, a zero time budget, the config check, log records."""
    model = W.make_model()
    opt = torch.optim.AdamW(model.parameters())
    lrs = []
    log = TrainLog(None)
    plan = TrainPlan(global_batch=8, epochs=2, max_steps_per_epoch=2, log_every=2)
    done = train_steps(DistContext(), model, opt, W.cache_windows(), W.denoise_loss, plan, log=log,
                       on_step=lambda p: lrs.append(opt.param_groups[0]["lr"]), lr_at=lambda s: 0.1 * (s + 1),
                       state_path=tmp_path / "s.pt", config={"lr": "a"}, log_fields={"stage": 7})
    assert (done.epoch, done.global_step) == (2, 4) and lrs == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert [r["global_step"] for r in log.records] == [2, 4] and log.records[0]["stage"] == 7
    assert log.records[0]["samples_per_s"] > 0
    with pytest.raises(CheckpointError, match=r"other settings \(\['lr'\]\)"):
        train_steps(DistContext(), model, opt, W.cache_windows(), W.denoise_loss, plan,
                    state_path=tmp_path / "s.pt", config={"lr": "b"})
    idle = train_steps(DistContext(), model, opt, W.cache_windows(), W.denoise_loss,
                       TrainPlan(global_batch=8, time_budget_s=0.0))
    assert idle.global_step == 0
