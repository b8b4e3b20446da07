import numpy as np
import pytest
import torch

from augframe import CheckpointError
from augframe.checkpoint import load_into, load_torch_checkpoint, load_weights, read_config, save_weights
from augframe.training import EMA, EpochSampler, TrainLog, compile_module, load_train_state, save_train_state


def test_epoch_sampler_resume_is_world_size_independent():
    one = EpochSampler(23, 4, seed=3)
    one.set_epoch(2)
    global_batches = list(one)
    two = [EpochSampler(23, 2, seed=3, rank=r, world_size=2) for r in range(2)]
    for s in two:
        s.set_epoch(2, start_step=3)
    for step, (a, b) in enumerate(zip(*two), start=3):
        assert a + b == global_batches[step]
    assert len(two[0]) == len(global_batches) - 3


def test_weights_round_trip_and_mismatch(tmp_path):
    m = torch.nn.Conv1d(1, 4, 3)
    save_weights(tmp_path / "w.safetensors", m.state_dict(), {"ch": 4})
    state, cfg = load_weights(tmp_path / "w.safetensors")
    assert cfg == {"ch": 4} == read_config(tmp_path / "w.safetensors")
    m2 = torch.nn.Conv1d(1, 4, 3)
    load_into(m2, state)
    assert torch.equal(m2.weight, m.weight)
    with pytest.raises(CheckpointError, match=r"checkpoint shape \(4, 1, 3\) vs model shape \(8, 1, 3\)"):
        load_into(torch.nn.Conv1d(1, 8, 3), state)


def test_corrupt_and_missing_checkpoints(tmp_path):
    p = tmp_path / "w.safetensors"
    save_weights(p, {"a": torch.ones(1000)}, {})
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_weights(p)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(tmp_path / "nope.safetensors")
    bad = tmp_path / "evil.pt"
    torch.save({"f": np.random.default_rng}, bad)
    with pytest.raises(CheckpointError, match="safely"):
        load_torch_checkpoint(bad)


def _train(model, opt, ema, steps, gen):
    for _ in range(steps):
        x = torch.randn(8, 3, generator=gen)
        loss = model(x).pow(2).mean() + torch.rand(()).mul(0)  # global RNG touched too
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(model)


def test_train_state_resume_is_exact(tmp_path):
    torch.manual_seed(0)
    ref = torch.nn.Linear(3, 2)
    init = {k: v.clone() for k, v in ref.state_dict().items()}
    opt = torch.optim.AdamW(ref.parameters(), lr=0.1)
    ema = EMA(ref, 0.9)
    gen = torch.Generator().manual_seed(1)
    _train(ref, opt, ema, 6, gen)

    m = torch.nn.Linear(3, 2)
    m.load_state_dict(init)
    opt2 = torch.optim.AdamW(m.parameters(), lr=0.1)
    ema2 = EMA(m, 0.9)
    gen2 = torch.Generator().manual_seed(1)
    _train(m, opt2, ema2, 3, gen2)
    save_train_state(tmp_path / "s.pt", modules={"m": m}, optimizers={"o": opt2}, ema={"e": ema2},
                     counters={"step": 3}, extra={"gen": gen2.get_state()})
    m3 = torch.nn.Linear(3, 2)
    opt3 = torch.optim.AdamW(m3.parameters(), lr=0.1)
    ema3 = EMA(m3, 0.9)
    info = load_train_state(tmp_path / "s.pt", modules={"m": m3}, optimizers={"o": opt3}, ema={"e": ema3})
    gen3 = torch.Generator()
    gen3.set_state(info["extra"]["gen"])
    _train(m3, opt3, ema3, 3, gen3)
    assert info["counters"] == {"step": 3}
    for k in ref.state_dict():
        assert torch.equal(ref.state_dict()[k], m3.state_dict()[k])
        assert torch.equal(ema.shadow[k], ema3.shadow[k])


def test_train_log(tmp_path):
    log = TrainLog(tmp_path / "log.jsonl")
    log.write(step=1, loss=np.float32(0.5))
    assert TrainLog.read(tmp_path / "log.jsonl") == [{"step": 1, "loss": 0.5}]


def test_compile_module_keeps_the_eager_module_on_the_cpu_unless_asked():
    net = torch.nn.Linear(2, 2)
    assert compile_module(net, "cpu") is net and compile_module(net, "cuda", enabled=False) is net


def test_ema_warmup_follows_the_model_early_and_resumes_its_count():
    m = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(m, 0.99, warmup=True)
    with torch.no_grad():
        m.weight.fill_(1.0)
    start = float(ema.shadow["weight"])
    ema.update(m)  # first update: decay min(0.99, 1/10) = 0.1
    assert float(ema.shadow["weight"]) == pytest.approx(0.1 * start + 0.9)
    again = EMA(m, 0.99, warmup=True)
    again.load_state_dict(ema.state_dict())
    assert again.updates == ema.updates == 1
