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
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from augframe.errors import ValidationError
from augframe.seeding import derive_seeds
from augframe.training import (
    EMA, EpochSampler, TrainLog, autocast, load_train_state, make_loader, progress, save_train_state,
)
from augframe_diffstylets.config import TrainConfig, to_dict
from augframe_diffstylets.model import DiffStyleTS, kl_divergence
from augframe_diffstylets.normalise import Normaliser
from augframe_diffstylets.sampler import guided_eps, sdedit
from augframe_diffstylets.schedule import CosineSchedule, noise_level

STATE_FILE = "train_state.pt"
LOG_FILE = "train_log.jsonl"


def other_class(y: torch.Tensor, num_classes: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """A target class different from y (1 - y for two classes; a random other class otherwise)."""
    if num_classes == 2:
        return 1 - y
    shift = torch.randint(1, num_classes, y.shape, device=y.device, generator=gen)
    return (y + shift) % num_classes


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
        self.schedule = CosineSchedule(device=device)
        self.null = model.cfg.null_class
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.ema = EMA(model, cfg.ema_decay) if cfg.ema_decay else None
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
        sampler = EpochSampler(len(self.data), self.cfg.batch_size, seed=self.seed)
        if sampler.steps_per_epoch() == 0:
            raise ValidationError(
                f"{len(self.data)} training windows make no batch of batch_size={self.cfg.batch_size}"
            )
        end = self.total_epochs if stop_after_epoch is None else min(stop_after_epoch, self.total_epochs)
        while self.epoch < end:
            stage = 1 if self.epoch < self.cfg.stage1_epochs else 2
            sampler.set_epoch(self.epoch)
            self._run_epoch(stage, sampler)
            self.epoch += 1
            if self.epoch % self.cfg.checkpoint_every == 0 or self.epoch == end:
                self.save_state()
        return dict(self.history)

    def _run_epoch(self, stage: int, sampler: EpochSampler) -> None:
        self.model.train()
        loader = make_loader(self.data, sampler, num_workers=self.cfg.num_workers,
                             pin_memory=self.device.startswith("cuda"))
        n_steps = len(sampler)
        if self.cfg.max_steps_per_epoch is not None:
            n_steps = min(n_steps, self.cfg.max_steps_per_epoch)
        sums: dict[str, float] = defaultdict(float)
        start, seen = time.perf_counter(), 0
        bar = progress(loader, total=n_steps, desc=f"diffstylets stage {stage} epoch {self.epoch + 1}",
                       enabled=self.cfg.progress)
        for step, (x, y) in enumerate(bar):
            if step >= n_steps:
                break
            x = self.normaliser.forward(x.to(self.device, non_blocking=True).float())
            y = y.to(self.device, non_blocking=True).long()
            terms = self.step(x, y, stage, step)
            for k, v in terms.items():
                sums[k] += v
                self.history[f"step_{k}"].append(v)
            seen += len(x)
        elapsed = time.perf_counter() - start
        means = {k: v / max(1, n_steps) for k, v in sums.items()}
        for k, v in means.items():
            self.history[f"stage{stage}_{k}"].append(v)
        self.log.write(epoch=self.epoch + 1, stage=stage, steps=n_steps, seconds=elapsed,
                       samples_per_s=seen / max(elapsed, 1e-9), **means)

    # ---- one optimiser step --------------------------------------------------------------------
    def step(self, x: torch.Tensor, y: torch.Tensor, stage: int, step: int) -> dict[str, float]:
        with autocast(self.device, enabled=self.precision != "float32", cpu_bf16=self.precision == "bfloat16"):
            terms = self._denoise_terms(x, y, with_encoder_losses=(stage == 1 or self.mode == "improved"))
            loss = terms["loss"]
            monitor: dict[str, torch.Tensor] = {}
            if stage == 2 and self.mode == "improved":
                flip, sim = self._flip_terms(x, y, terms["content"], terms["style"])
                loss = loss + self.cfg.w_flip * flip + self.cfg.w_sim * sim
                monitor = {"flip": flip, "sim": sim}
        if stage == 2 and self.mode == "faithful":
            monitor = self._monitor(x, y, step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        if self.ema is not None:
            self.ema.update(self.model)
        out = {k: float(terms[k].detach()) for k in ("mse", "ce", "kl")}
        out.update({k: float(v.detach()) for k, v in monitor.items()})
        reported = loss.detach()
        if stage == 2 and self.mode == "faithful":  # the reference's logged total (constants included)
            reported = reported + sum(self.cfg.w_flip * v if k == "flip" else self.cfg.w_sim * v
                                      for k, v in monitor.items())
        out["loss"] = float(reported)
        return out

    def _cfg_labels(self, y: torch.Tensor) -> torch.Tensor:
        p = self.cfg.cfg_dropout
        if self.mode == "faithful":  # one coin for the whole batch, as the reference
            drop = torch.rand((), device=y.device) < p
            return torch.where(drop, torch.full_like(y, self.null), y)
        drop = torch.rand(y.shape, device=y.device) < p
        return torch.where(drop, torch.full_like(y, self.null), y)

    def _denoise_terms(self, x: torch.Tensor, y: torch.Tensor, with_encoder_losses: bool) -> dict[str, torch.Tensor]:
        m = self.model
        z, mu, logvar = m.content_encoder(x)
        style, logits = m.style_encoder(x)
        t = torch.randint(0, self.schedule.T, (x.shape[0],), device=x.device)
        noise = torch.randn_like(x)
        x_t = self.schedule.q_sample(x, t, noise)
        eps_hat = m.unet(x_t, t, z, style, self._cfg_labels(y))
        mse = F.mse_loss(eps_hat.float(), noise)
        ce = F.cross_entropy(logits.float(), y)
        kl = kl_divergence(mu.float(), logvar.float())
        loss = self.cfg.w_recon * mse
        if with_encoder_losses:
            loss = loss + self.cfg.w_style * ce + self.cfg.w_kl * kl
        return {"loss": loss, "mse": mse, "ce": ce, "kl": kl, "content": z, "style": style}

    def _judge_logits(self, x_model: torch.Tensor) -> torch.Tensor:
        x = self.normaliser.inverse(x_model.float())
        if x.is_cuda and torch.is_grad_enabled():
            # cuDNN's LSTM has no backward in eval mode (why the reference forced train() on its judge);
            # the native kernels do, so the judge stays in eval mode with frozen BatchNorm statistics.
            with torch.backends.cudnn.flags(enabled=False):
                logits = self.judge(x)
        else:
            logits = self.judge(x)
        return logits if self.judge_index is None else logits[:, self.judge_index]

    def _flip_terms(self, x: torch.Tensor, y: torch.Tensor, content: torch.Tensor, style: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Improved stage 2: guided one-step x0 towards y' through the frozen judge, with gradients."""
        target = other_class(y, self.model.cfg.num_classes)
        t_hi = noise_level(self.cfg.flip_strength, self.cfg.flip_steps, "improved", self.schedule.T)
        t = torch.randint(max(1, t_hi // 2), t_hi + 1, (x.shape[0],), device=x.device)
        x_t = self.schedule.q_sample(x, t, torch.randn_like(x))
        eps, _, _ = guided_eps(self.model.unet, x_t, t, content, style, target, self.null, self.cfg.flip_guidance)
        ab = self.schedule.alphas_cumprod[t].view(-1, 1, 1)
        x0 = ((x_t - torch.sqrt(1 - ab) * eps.float()) / torch.sqrt(ab)).clamp(-self.normaliser.clamp,
                                                                               self.normaliser.clamp)
        sim = F.mse_loss(x0, x)
        if self.judge is None:
            return torch.zeros((), device=x.device), sim
        return F.cross_entropy(self._judge_logits(x0).float(), target), sim

    @torch.no_grad()
    def _monitor(self, x: torch.Tensor, y: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """Faithful stage 2: the reference's no-grad SDEdit flip/similarity numbers (they train nothing)."""
        was_training = self.model.training
        self.model.eval()
        content, style = self.model.encode(x)
        target = other_class(y, self.model.cfg.num_classes)
        seeds = derive_seeds(self.seed + 7919 * (self.epoch + 1), len(x), offset=step * len(x))
        cf, _ = sdedit(self.model.unet, self.schedule, x, content, style, target, seeds, null_class=self.null,
                       strength=self.cfg.flip_strength, steps=self.cfg.flip_steps, guidance=self.cfg.flip_guidance,
                       clamp=self.normaliser.clamp, mode="faithful")
        self.model.train(was_training)
        out = {"sim": F.mse_loss(cf, x)}
        if self.judge is not None:
            out["flip"] = F.cross_entropy(self._judge_logits(cf).float(), target)
        return out
