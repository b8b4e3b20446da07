"""Training: eps-prediction MSE on the unknown entries, a random task mask per sample, Adam, EMA.

The loop is the core's :func:`augframe.distributed.train_steps` (a fixed batch order per (seed,
epoch), lr per step, grad clipping, EMA with warm-up, resumable state, log); this module holds the
loss. Crop offsets, task masks, dropped labels, timesteps and noise are pure functions of (seed,
step), so a run resumed from its train state replays exactly the batches an uninterrupted run
would have seen.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from augframe.diffusion import NoiseSchedule
from augframe.errors import ValidationError
from augframe.seeding import Stream, derive_seeds, numpy_rng, randn
from augframe.training import EMA, TrainLog, autocast

from augframe_diffecg.masks import training_masks
from augframe_diffecg.prior import PRIORS, prior_fill

log = logging.getLogger(__name__)

STATE_NAME = "train_state.pt"
LOG_NAME = "train_log.jsonl"
LR_SCHEDULES = ("constant", "cosine")


def lr_at(step: int, settings: "TrainSettings") -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up, then constant or cosine.

    The cosine decays from ``lr`` to 0.1 * ``lr`` at ``settings.steps``. A pure function of the
    step, so resumed runs follow the same schedule.
    """
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    if settings.lr_schedule == "constant":
        return settings.lr
    span = max(1, settings.steps - settings.warmup_steps)
    frac = min(1.0, (step - settings.warmup_steps) / span)
    return settings.lr * (0.1 + 0.9 * 0.5 * (1.0 + np.cos(np.pi * frac)))


@attrs.frozen
class TrainSettings:
    """Optimisation settings; the paper fixes Adam with lr 1e-3, the rest are our choices."""

    steps: int = 2000
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    ema_decay: float = 0.999
    p_uncond: float = 0.1
    grad_clip: float = 1.0
    crop: int | None = None
    time_budget_s: float | None = None
    log_every: int = 25
    checkpoint_every: int = 200

    def __attrs_post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValidationError(f"train steps={self.steps} and batch_size={self.batch_size} must be >= 1")
        if not 0 <= self.p_uncond < 1:
            raise ValidationError(f"p_uncond={self.p_uncond} must lie in [0, 1)")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValidationError(f"lr_schedule={self.lr_schedule!r}; use one of {LR_SCHEDULES}")
        if self.warmup_steps < 0:
            raise ValidationError(f"warmup_steps={self.warmup_steps} must be >= 0")
        if self.crop is not None and self.crop < 8:
            raise ValidationError(f"crop={self.crop} must be at least 8 samples (or None for whole windows)")


#: Settings a resume may change (how long to run, how often to log and save).
RUN_LENGTH = ("steps", "time_budget_s", "log_every", "checkpoint_every")


class _Windows:
    """The training windows with their labels, each checked for the model's length."""

    def __init__(self, data: Any, labels: np.ndarray, length: int) -> None:
        self.data, self.labels, self.length = data, labels, length

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        x = np.asarray(self.data[int(i)][0], dtype=np.float32)
        if x.shape[-1] != self.length:
            raise ValidationError(f"training window {int(i)} has {x.shape[-1]} samples; expected {self.length}")
        return x, int(self.labels[int(i)])


def _crop(x: torch.Tensor, crop: int | None, rng: np.random.Generator) -> torch.Tensor:
    if crop is None or crop >= x.shape[-1]:
        return x
    start = torch.from_numpy(rng.integers(0, x.shape[-1] - crop + 1, size=len(x))).to(x.device)
    idx = start[:, None] + torch.arange(crop, device=x.device)[None, :]
    return torch.gather(x, 2, idx[:, None, :].expand(-1, x.shape[1], -1))


def train(model: torch.nn.Module, schedule: NoiseSchedule, data: Any, labels: np.ndarray, n_classes: int,
          scale: float, settings: TrainSettings, seed: int = 0, device: str | torch.device = "cpu",
          workdir: Path | None = None, progress: bool = False,
          prior: str = "none", period: int = 0) -> tuple[torch.nn.Module, list[dict]]:
    """Train ``model`` in place; returns (EMA weights loaded into a copy, log records).

    ``prior``/``period`` (the model's): with a prior the diffused target is x0 minus the prior's
    fill of its known part (see :mod:`augframe_diffecg.prior`).

    With ``workdir``, the train state is saved every ``checkpoint_every`` steps and at the end,
    and a later call with the same workdir (same settings but the run lengths) resumes from it.
    """
    from augframe.distributed import DistContext, TrainPlan, train_steps

    if prior not in PRIORS:
        raise ValidationError(f"train prior={prior!r}; use one of {PRIORS}")
    if len(data) < settings.batch_size:
        raise ValidationError(f"{len(data)} training windows make no batch of batch_size={settings.batch_size}; "
                              "lower train_batch_size or add windows")
    device = torch.device(device)
    model.to(device).train()
    ema = EMA(model, settings.ema_decay, warmup=True)  # early EMA follows the model
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    length = int(np.asarray(data[0][0]).shape[-1])
    windows = _Windows(data, np.asarray(labels, dtype=np.int64), length)
    plan = TrainPlan(global_batch=settings.batch_size, seed=seed, epochs=-(-settings.steps // (len(data) // settings.batch_size)),
                     max_steps=settings.steps, time_budget_s=settings.time_budget_s, grad_clip=settings.grad_clip,
                     checkpoint_every=settings.checkpoint_every, log_every=settings.log_every, autocast=False,
                     progress=progress, desc="diffecg")
    T = schedule.num_train_timesteps

    def loss_fn(m: Any, b: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        rng = numpy_rng(seed, Stream.DIFFECG_BATCH, b.global_step)
        x0 = _crop(b.x, settings.crop, rng) / scale
        mask = torch.from_numpy(training_masks(tuple(x0.shape), rng)).to(device)
        drop = torch.from_numpy(rng.random(len(x0)) < settings.p_uncond).to(device)
        y = torch.where((b.y >= n_classes) | drop, -1, b.y)
        t = torch.from_numpy(rng.integers(0, T, size=len(x0))).to(device)
        noise = randn(derive_seeds(seed + Stream.DIFFECG_NOISE, len(x0), offset=b.global_step * len(x0)), tuple(x0.shape[1:]),
                      device=device)
        x_t = schedule.add_noise(x0 - prior_fill(prior, x0, mask, period), noise, t)
        with autocast(device):
            eps = m(x_t, t, x0 * mask, mask, y)
        w = (~mask).float()
        loss = ((eps.float() - noise) ** 2 * w).sum() / w.sum().clamp(min=1.0)
        return loss, {"lr": opt.param_groups[0]["lr"]}

    config = {k: v for k, v in attrs.asdict(settings).items() if k not in RUN_LENGTH}
    log = TrainLog(Path(workdir) / LOG_NAME if workdir is not None else None)
    train_steps(DistContext(device=str(device)), model, opt, windows, loss_fn, plan, ema=ema,
                state_path=Path(workdir) / STATE_NAME if workdir is not None else None, log=log, config=config,
                lr_at=lambda step: lr_at(step, settings))
    model.eval()
    return _ema_copy(model, ema), log.records


def _ema_copy(model: torch.nn.Module, ema: EMA) -> torch.nn.Module:
    import copy

    out = copy.deepcopy(model)
    ema.copy_to(out)
    return out.eval()
