"""Training on real CinC 2017 windows: the loss falls, resume is exact, stage 2 trains (improved) or monitors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from augframe.errors import ValidationError
from augframe.seeding import derive_seeds
from augframe.training import TrainLog
from augframe_diffstylets.config import ModelConfig, TrainConfig
from augframe_diffstylets.model import DiffStyleTS
from augframe_diffstylets.normalise import fit_normaliser
from augframe_diffstylets.stages import StageLoss, batch_seed
from augframe_diffstylets.train import LOG_FILE, STATE_FILE, Trainer
from augframe.windows import as_windows

from diffstylets_helpers import CROP, TINY, TinyJudge


def _trainer(data, mode, workdir=None, judge=None, seed=0, **train):
    cfg = ModelConfig(signal_length=CROP, fs=250.0, **TINY)
    windows = as_windows(data)
    torch.manual_seed(seed)
    model = DiffStyleTS(cfg)
    tc = TrainConfig(**{"batch_size": 8, "lr": 2e-3, "judge": "", **train})
    return Trainer(model, windows, mode=mode, cfg=tc, normaliser=fit_normaliser(windows, mode), seed=seed,
                   workdir=workdir, judge=judge)


def _loss(trainer: Trainer, stage: int, judge=None) -> StageLoss:
    return StageLoss(trainer.model, trainer.cfg, trainer.mode, stage=stage, clamp=trainer.normaliser.clamp,
                     judge=judge, normaliser=trainer.normaliser)


def test_stage1_loss_falls_over_a_few_hundred_steps(fitted):
    """The session's fitted generator (conftest.FIT_TRAIN): 12 epochs, 204 stage-1 steps on real CinC windows."""
    _gen, result, workdir = fitted
    history = result["history"]
    mse = np.asarray(history["stage1_mse"])  # one mean per epoch of 17 steps
    assert len(mse) == 12
    first, last = mse[:2].mean(), mse[-2:].mean()
    assert last < 0.8 * first, (first, last)
    ce = np.asarray(history["stage1_ce"])
    assert ce[-2:].mean() < ce[:2].mean()
    log = TrainLog.read(workdir / LOG_FILE)
    assert [r["stage"] for r in log] == [1] * 12 + [2]
    assert log[-1]["samples_per_s"] > 0 and log[-1]["flip"] > 0


@pytest.mark.parametrize("mode,ema", [("improved", 0.9), ("faithful", None)])
def test_resume_gives_the_same_weights_as_uninterrupted(short_windows, tmp_path, mode, ema):
    kw = dict(stage1_epochs=1, stage2_epochs=1, checkpoint_every=1, max_steps_per_epoch=2, ema_decay=ema,
              flip_steps=2)
    straight = _trainer(short_windows, mode, tmp_path / "a", **kw)
    straight.run()
    first = _trainer(short_windows, mode, tmp_path / "b", **kw)
    first.run(stop_after_epoch=1)
    assert (tmp_path / "b" / STATE_FILE).is_file()
    torch.manual_seed(12345)  # a resumed process starts with whatever global RNG state it has
    resumed = _trainer(short_windows, mode, tmp_path / "b", seed=0, **kw)
    resumed.run()
    assert resumed.epoch == straight.epoch == 2
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    if ema:
        for k, v in straight.ema.shadow.items():
            assert torch.equal(v, resumed.ema.shadow[k]), k
    assert straight.history == resumed.history and len(straight.history["stage2_loss"]) == 1


def test_improved_stage2_trains_through_a_frozen_judge(short_windows):
    judge = TinyJudge().eval()
    for p in judge.parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in judge.state_dict().items()}
    trainer = _trainer(short_windows, "improved", judge=judge, stage1_epochs=0, stage2_epochs=1,
                       max_steps_per_epoch=2)
    x, y = torch.from_numpy(short_windows.signals[:8]), torch.as_tensor(short_windows.labels[:8])
    x = trainer.normaliser.forward(x)
    trainer.model.train()
    seeds = torch.from_numpy(derive_seeds(0, 8))
    flip, sim = _loss(trainer, 2, judge).flip_terms(x, y, seeds, *trainer.model.encode(x))
    flip.backward()
    grads = [p.grad for p in trainer.model.unet.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)  # the flip loss reaches the generator
    assert all(p.grad is None for p in judge.parameters())
    trainer.model.zero_grad()
    trainer.run()
    assert trainer.history["stage2_flip"][0] > 0 and trainer.history["stage2_sim"][0] > 0
    assert all(torch.equal(v, judge.state_dict()[k]) for k, v in before.items())
    assert not judge.training


def test_faithful_stage2_only_monitors(short_windows):
    judge = TinyJudge().eval()
    trainer = _trainer(short_windows, "faithful", judge=judge, stage1_epochs=0, stage2_epochs=1,
                       max_steps_per_epoch=1, flip_steps=3)
    trainer.run()
    assert "stage2_flip" in trainer.history and "stage2_sim" in trainer.history
    # faithful stage 2 drops the CE/KL terms and its flip/sim terms carry no gradient
    x, y = torch.from_numpy(short_windows.signals[:8]), torch.as_tensor(short_windows.labels[:8])
    monitor = _loss(trainer, 2, judge).monitor(trainer.normaliser.forward(x), y, torch.from_numpy(derive_seeds(0, 8)))
    assert all(not v.requires_grad for v in monitor.values())


def test_cfg_dropout_per_batch_faithful_per_sample_improved(short_windows):
    """Coins come from the seeds (per sample; per (seed, epoch, step) in faithful mode), not torch's RNG."""
    y = torch.zeros(4000, dtype=torch.long)
    seeds = torch.from_numpy(derive_seeds(0, 4000))
    improved = _loss(_trainer(short_windows, "improved"), 1)
    per_sample = improved.cfg_labels(y, seeds, batch_seed(0, 0, 0))
    assert 0.07 < float((per_sample == 2).float().mean()) < 0.13
    torch.manual_seed(1)  # the global RNG plays no part
    assert torch.equal(improved.cfg_labels(y, seeds, batch_seed(0, 0, 0)), per_sample)
    assert torch.equal(improved.cfg_labels(y[:100], seeds[:100], batch_seed(0, 0, 0)), per_sample[:100])
    faithful = _loss(_trainer(short_windows, "faithful"), 1)
    rows = [faithful.cfg_labels(y[:16], seeds[16 * i:16 * i + 16], batch_seed(0, 0, i)) for i in range(250)]
    assert all(bool((r == 2).all()) or bool((r == 0).all()) for r in rows)
    assert 8 < sum(bool((r == 2).all()) for r in rows) < 50


def test_bad_labels_are_named(short_windows):
    bad = short_windows.with_signals(short_windows.signals, labels=np.full(len(short_windows), -1),
                                     class_names=())
    with pytest.raises(ValidationError, match="class indices"):
        _trainer(bad, "improved")


def test_train_state_file_is_weights_only_loadable(short_windows, tmp_path):
    _trainer(short_windows, "improved", tmp_path, stage1_epochs=1, stage2_epochs=0, max_steps_per_epoch=1).run()
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    assert state["counters"]["epoch"] == 1 and "optimizer" in state["optimizers"]
    assert json.loads(state["config_json"])["mode"] == "improved"


def test_trains_from_the_memmap_window_cache_like_from_memory(short_windows, tmp_path):
    """The data layer's memory-mapped cache is a WindowDataset: same windows, same weights."""
    from augframe.data.arrays import ArraySource
    from augframe.data.cache import build_cache
    from augframe.data.preprocess import PreprocessConfig

    npz = tmp_path / "windows.npz"
    np.savez(npz, X=short_windows.signals, y=short_windows.labels)
    source = ArraySource(npz, fs=250.0, leads=("I",))
    config = PreprocessConfig(leads=("I",), fs=250.0, cleaning="none", quality="none",
                              window_s=CROP / 250.0)
    cache = build_cache(source, config, classes=("N", "A"), root=tmp_path / "cache")
    assert isinstance(cache.signals, np.memmap) and len(cache) == len(short_windows)
    np.testing.assert_array_equal(cache.signals[:], short_windows.signals)
    kw = dict(stage1_epochs=1, stage2_epochs=0, max_steps_per_epoch=2)
    from_cache = _trainer(cache, "improved", **kw)
    from_cache.run()
    in_memory = _trainer(short_windows, "improved", **kw)
    in_memory.run()
    for (k, a), b in zip(from_cache.model.state_dict().items(), in_memory.model.state_dict().values()):
        assert torch.equal(a, b), k
