"""Two-stage DiffStyleTS training with exact resume.

Stage 1 (both modes): L = w_recon MSE(eps_hat, eps) + w_style CE(style logits, y) + w_kl KL, the UNet
conditioned on the true label with classifier-free dropout to the null class (per batch in
``faithful`` mode, as the reference; per sample in ``improved`` mode).

Stage 2:
  * ``faithful``: the reference's stage 2. The optimised loss is the eps-MSE alone; a no-grad
    SDEdit (strength 0.6, 20 steps, CFG 3) of each batch towards the other class gives the flip loss
    (judge CE) and the similarity MSE that the reference logs but cannot train with.
  * ``improved``: losses that train. From x_t at the SDEdit noise level, a guided one-step x0
    estimate towards the other class is fed (with gradients) through a frozen, eval-mode judge
    classifier: L = stage-1 terms + w_flip CE(judge(x0_hat), y') + w_sim MSE(x0_hat, x).

AdamW, global grad-norm clipping, optional EMA, bf16 autocast on CUDA; a resumable training state
(modules, optimiser, EMA, RNG states, epoch) every ``checkpoint_every`` epochs and at the end; a JSON
lines log; progress bars on terminals. The epoch order depends only on (seed, epoch), so a run
resumed from a state file ends with the same weights as an uninterrupted one.

The loss of a step is :class:`augframe_diffstylets.stages.StageLoss` (one module, every draw from
per-sample seeds): the same loss, order and seeds as :func:`augframe_diffstylets.stages.train_stage`,
which runs it through the core's ``train_steps`` on any number of ranks. A one-process
``train_stage`` of stage 1 ends with this Trainer's weights bit for bit (tested).
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augframe.distributed import Indexed, epoch_sample_seeds
from augframe.errors import ValidationError
from augframe.training import (
    EpochSampler, TrainLog, autocast, load_train_state, make_loader, progress, save_train_state,
)
from augframe_diffstylets.config import TrainConfig, to_dict
from augframe_diffstylets.model import DiffStyleTS
from augframe_diffstylets.normalise import Normaliser
from augframe_diffstylets.stages import ModelEMA, StageLoss, batch_seed, loss_step, other_class

STATE_FILE = "train_state.pt"
LOG_FILE = "train_log.jsonl"

__all__ = ["LOG_FILE", "STATE_FILE", "Trainer", "other_class"]


class Trainer:
    """Runs both stages over a WindowDataset; ``run`` resumes from ``workdir`` when a state exists."""

    def __init__(self, model: DiffStyleTS, data: Any, *, mode: str, cfg: TrainConfig, normaliser: Normaliser,
                 device: str = "cpu", seed: int = 0, workdir: str | Path | None = None, judge: Any = None,
                 judge_index: torch.Tensor | None = None, precision: str = "auto") -> None:
        self.model, self.data, self.mode, self.cfg = model.to(device), data, mode, cfg
        self.normaliser, self.device, self.seed = normaliser, device, seed
        self.workdir = Path(workdir) if workdir is not None else None
        self.judge, self.judge_index = judge, judge_index
        self.precision = precision
        self.loss = StageLoss(self.model, cfg, mode, clamp=normaliser.clamp, judge=judge, judge_index=judge_index,
                              normaliser=normaliser).to(device)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.ema = ModelEMA(model, cfg.ema_decay) if cfg.ema_decay else None
        self.history: dict[str, list[float]] = defaultdict(list)
        self.epoch = 0
        self.log = TrainLog(self.workdir / LOG_FILE if self.workdir else None)
        labels = np.asarray(data.labels)
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= model.cfg.num_classes:
            raise ValidationError(
                f"training labels must be class indices 0..{model.cfg.num_classes - 1} "
                f"(classes {tuple(data.class_names)}); drop unlabelled windows first"
            )

    # ---- state ---------------------------------------------------------------------------------
    @property
    def total_epochs(self) -> int:
        return self.cfg.stage1_epochs + self.cfg.stage2_epochs

    def _state_path(self) -> Path | None:
        return self.workdir / STATE_FILE if self.workdir else None

    def save_state(self) -> None:
        path = self._state_path()
        if path is None:
            return
        save_train_state(
            path, modules={"model": self.model}, optimizers={"opt": self.opt},
            ema={"ema": self.ema} if self.ema else {}, counters={"epoch": self.epoch},
            extra={"history": {k: list(v) for k, v in self.history.items()}},
            config={"train": to_dict(self.cfg), "mode": self.mode, "seed": self.seed},
        )

    def try_resume(self) -> bool:
        path = self._state_path()
        if path is None or not path.is_file():
            return False
        state = load_train_state(path, modules={"model": self.model}, optimizers={"opt": self.opt},
                                 ema={"ema": self.ema} if self.ema else {})
        self.epoch = int(state["counters"]["epoch"])
        self.history = defaultdict(list, {k: list(v) for k, v in state["extra"].get("history", {}).items()})
        return True

    # ---- loop ----------------------------------------------------------------------------------
    def run(self, stop_after_epoch: int | None = None) -> dict[str, list[float]]:
        """Train to the end (or up to ``stop_after_epoch`` epochs done), resuming if a state exists."""
        if not self.try_resume():
            torch.manual_seed(self.seed)
        if len(self.data) < self.cfg.batch_size:
            raise ValidationError(
                f"{len(self.data)} training windows make no batch of batch_size={self.cfg.batch_size}"
            )
        end = self.total_epochs if stop_after_epoch is None else min(stop_after_epoch, self.total_epochs)
        while self.epoch < end:
            stage = 1 if self.epoch < self.cfg.stage1_epochs else 2
            self._run_epoch(stage)
            self.epoch += 1
            if self.epoch % self.cfg.checkpoint_every == 0 or self.epoch == end:
                self.save_state()
        return dict(self.history)

    def stage_seed(self, stage: int) -> int:
        """Run seed of a stage's order and noise (stage 2 uses seed + 1, as ``train_stage``)."""
        return self.seed + (stage - 1)

    def _run_epoch(self, stage: int) -> None:
        self.model.train()
        self.loss.stage = stage
        seed = self.stage_seed(stage)
        stage_epoch = self.epoch - (0 if stage == 1 else self.cfg.stage1_epochs)
        sampler = EpochSampler(len(self.data), self.cfg.batch_size, seed=seed)
        sampler.set_epoch(stage_epoch)
        seed_table = torch.from_numpy(epoch_sample_seeds(seed, stage_epoch, len(self.data))).to(self.device)
        loader = make_loader(Indexed(self.data), sampler, num_workers=self.cfg.num_workers,
                             pin_memory=self.device.startswith("cuda"))
        n_steps = len(sampler)
        if self.cfg.max_steps_per_epoch is not None:
            n_steps = min(n_steps, self.cfg.max_steps_per_epoch)
        steps: dict[str, list[torch.Tensor]] = defaultdict(list)
        start, seen = time.perf_counter(), 0
        bar = progress(loader, total=n_steps, desc=f"diffstylets stage {stage} epoch {self.epoch + 1}",
                       enabled=self.cfg.progress)
        for step, (x, y, idx) in enumerate(bar):
            if step >= n_steps:
                break
            x = self.normaliser.forward(x.to(self.device, non_blocking=True).float())
            y = y.to(self.device, non_blocking=True).long()
            seeds = seed_table[idx.to(self.device, non_blocking=True)]
            for k, v in self.step(x, y, seeds, batch_seed(seed, stage_epoch, step, self.device)).items():
                steps[k].append(v)
            seen += len(x)
        elapsed = time.perf_counter() - start
        # one host transfer per epoch for all per-step metrics
        values = {k: torch.stack(v).float().cpu().tolist() for k, v in steps.items()}
        means = {k: float(np.mean(v)) for k, v in values.items()}
        for k, v in values.items():
            self.history[f"step_{k}"].extend(v)
            self.history[f"stage{stage}_{k}"].append(means[k])
        self.log.write(epoch=self.epoch + 1, stage=stage, steps=n_steps, seconds=elapsed,
                       samples_per_s=seen / max(elapsed, 1e-9), **means)

    # ---- one optimiser step --------------------------------------------------------------------
    def step(self, x: torch.Tensor, y: torch.Tensor, seeds: torch.Tensor, coin_seed: torch.Tensor
             ) -> dict[str, torch.Tensor]:
        """One optimiser step on a normalised batch; returns the step's metrics as detached tensors."""
        self.opt.zero_grad(set_to_none=True)
        with autocast(self.device, enabled=self.precision != "float32", cpu_bf16=self.precision == "bfloat16"):
            loss, metrics = loss_step(self.loss, x, y, seeds, coin_seed)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        if self.ema is not None:
            self.ema.update(self.model)
        out = dict(metrics)
        out["loss"] = out.pop("total", loss.detach())
        return out
