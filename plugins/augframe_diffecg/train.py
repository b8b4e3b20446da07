"""Training: eps-prediction MSE on the unknown entries, a random task mask per sample, Adam, EMA.

Batches follow :class:`augframe.training.EpochSampler` (a fixed order per (seed, epoch)); crop
offsets, task masks, dropped labels, timesteps and noise are pure functions of (seed, step). A
run resumed from its train state therefore replays exactly the batches an uninterrupted run
would have seen.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from augframe.diffusion import NoiseSchedule
from augframe.errors import ValidationError
from augframe.seeding import derive_seeds, numpy_rng, randn
from augframe.training import EMA, EpochSampler, TrainLog, autocast, load_train_state, save_train_state

from augframe_diffecg.masks import training_masks
from augframe_diffecg.prior import PRIORS, prior_fill

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


def _gather(data: Any, idx: np.ndarray, length: int) -> np.ndarray:
    x = np.stack([np.asarray(data[int(i)][0], dtype=np.float32) for i in idx])
    if x.shape[-1] != length:
        raise ValidationError(f"training window {int(idx[0])} has {x.shape[-1]} samples; expected {length}")
    return x


def _crop(x: np.ndarray, crop: int | None, rng: np.random.Generator) -> np.ndarray:
    if crop is None or crop >= x.shape[-1]:
        return x
    start = rng.integers(0, x.shape[-1] - crop + 1, size=len(x))
    idx = start[:, None] + np.arange(crop)[None, :]
    return np.take_along_axis(x, np.repeat(idx[:, None, :], x.shape[1], axis=1), axis=2)


class _Batches:
    """Global batch ``step`` of the epoch sampler, whatever step a run starts at."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.sampler = EpochSampler(n, batch_size, seed=seed, drop_last=n >= batch_size)
        self.per_epoch = max(1, self.sampler.steps_per_epoch())
        self._epoch, self._order = -1, None

    def indices(self, step: int) -> np.ndarray:
        epoch, pos = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._epoch, self._order = epoch, self.sampler.order()
        b = self.sampler.batch_size
        idx = self._order[pos * b:(pos + 1) * b]
        if len(idx) < b:  # fewer windows than one batch: wrap around
            idx = np.resize(self._order, b)
        return np.asarray(idx)


def train(model: torch.nn.Module, schedule: NoiseSchedule, data: Any, labels: np.ndarray, n_classes: int,
          scale: float, settings: TrainSettings, seed: int = 0, device: str | torch.device = "cpu",
          workdir: Path | None = None, progress: bool = False,
          prior: str = "none", period: int = 0) -> tuple[torch.nn.Module, list[dict]]:
    """Train ``model`` in place; returns (EMA weights loaded into a copy, log records).

    ``prior``/``period`` (the model's): with a prior the diffused target is x0 minus the prior's
    fill of its known part (see :mod:`augframe_diffecg.prior`).

    With ``workdir``, the train state is saved every ``checkpoint_every`` steps and at the end,
    and a later call with the same workdir resumes from it.
    """
    if prior not in PRIORS:
        raise ValidationError(f"train prior={prior!r}; use one of {PRIORS}")
    device = torch.device(device)
    model.to(device).train()
    ema = EMA(model, settings.ema_decay)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    length = int(np.asarray(data[0][0]).shape[-1])
    batches = _Batches(len(data), settings.batch_size, seed)
    state_path = Path(workdir) / STATE_NAME if workdir is not None else None
    tlog = TrainLog(Path(workdir) / LOG_NAME if workdir is not None else None)
    start = 0
    if state_path is not None and state_path.is_file():
        info = load_train_state(state_path, modules={"model": model}, optimizers={"opt": opt}, ema={"ema": ema})
        start = int(info["counters"]["step"])
    labels = np.asarray(labels, dtype=np.int64)
    t_begin = time.perf_counter()
    running, count, step = 0.0, 0, start
    while step < settings.steps:
        if settings.time_budget_s is not None and time.perf_counter() - t_begin > settings.time_budget_s:
            break
        rng = numpy_rng(seed, 0xD1FF, step)
        idx = batches.indices(step)
        x0 = torch.from_numpy(_crop(_gather(data, idx, length), settings.crop, rng) / scale).to(device)
        mask = torch.from_numpy(training_masks(tuple(x0.shape), rng)).to(device)
        y = labels[idx]
        y = np.where((y >= n_classes) | (rng.random(len(y)) < settings.p_uncond), -1, y)
        t = torch.from_numpy(rng.integers(0, schedule.num_train_timesteps, size=len(idx))).to(device)
        noise = randn(derive_seeds(seed + 7919, len(idx), offset=step * len(idx)), tuple(x0.shape[1:]),
                      device=device)
        x_t = schedule.add_noise(x0 - prior_fill(prior, x0, mask, period), noise, t)
        with autocast(device):
            eps = model(x_t, t, x0 * mask, mask, torch.from_numpy(y).to(device))
        w = (~mask).float()
        loss = ((eps.float() - noise) ** 2 * w).sum() / w.sum().clamp(min=1.0)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, settings)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        opt.step()
        ema.decay = min(settings.ema_decay, (1 + step) / (10 + step))  # warm-up: early EMA follows the model
        ema.update(model)
        step += 1
        running += float(loss.detach())
        count += 1
        if step % settings.log_every == 0:
            tlog.write(step=step, loss=running / count, lr=lr_at(step - 1, settings),
                       elapsed_s=round(time.perf_counter() - t_begin, 2))
            if progress:
                print(tlog.records[-1], flush=True)
            running, count = 0.0, 0
        if state_path is not None and step % settings.checkpoint_every == 0:
            _save(state_path, model, opt, ema, step, settings)
    if count:
        tlog.write(step=step, loss=running / count, elapsed_s=round(time.perf_counter() - t_begin, 2))
    if state_path is not None:
        _save(state_path, model, opt, ema, step, settings)
    model.eval()
    ema_model = _ema_copy(model, ema)
    return ema_model, tlog.records


def _save(path: Path, model, opt, ema: EMA, step: int, settings: TrainSettings) -> None:
    save_train_state(path, modules={"model": model}, optimizers={"opt": opt}, ema={"ema": ema},
                     counters={"step": step}, config=attrs.asdict(settings))


def _ema_copy(model: torch.nn.Module, ema: EMA) -> torch.nn.Module:
    import copy

    out = copy.deepcopy(model)
    ema.copy_to(out)
    return out.eval()
