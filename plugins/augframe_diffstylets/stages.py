"""DiffStyleTS training losses as ONE module each, so DDP sees the forward that runs the networks.

Every random draw of a step comes from the samples' per-sample seeds (``augframe.seeding.randn``,
one stream per purpose), never from torch's global RNG: the loss of a sample is the same whichever
rank, batch or process computes it. That is what lets :func:`train_stage` on N ranks end with the
weights of one process at the same global batch, and what makes a fit replayable run to run.

Streams (per sample): timestep, diffusion noise, VAE eps, CFG-dropout coin, stage-2 timestep and
noise, stage-2 target class. The faithful per-batch CFG coin is drawn from a seed of
(run seed, epoch, step), which every rank shares.

Metrics are returned as detached tensors (no host sync per step); the caller reduces them when it
logs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from augframe.diffusion import NoiseSchedule
from augframe.seeding import Stream, derive_seeds, randn
from augframe_diffstylets.config import TrainConfig
from augframe_diffstylets.model import DiffStyleTS, kl_divergence
from augframe_diffstylets.normalise import Normaliser
from augframe_diffstylets.sampler import guided_eps, sdedit

# per-sample stream ids of the loss's draws
S_T, S_NOISE, S_VAE, S_CFG, S_T2, S_NOISE2, S_TARGET, S_BATCH = 11, 12, 13, 14, 15, 16, 17, 18
MONITOR_SALT = Stream.DIFFSTYLETS_MONITOR  # seeds of the faithful stage-2 monitor (xor-ed, so they differ from training's)


def uniform(seeds: torch.Tensor, stream: int, shape: tuple[int, ...] = ()) -> torch.Tensor:
    """U(0, 1) per sample from its seed (the normal CDF of a seeded normal draw)."""
    z = randn(seeds, shape or (1,), stream=stream, device=seeds.device)
    u = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
    return u if shape else u[:, 0]


def randint(seeds: torch.Tensor, low: int, high: int, stream: int) -> torch.Tensor:
    """An integer in [low, high) per sample from its seed."""
    u = uniform(seeds, stream)
    return (low + torch.floor(u * (high - low)).long()).clamp(low, high - 1)


def batch_seed(seed: int, epoch: int, step: int, device: Any = "cpu") -> torch.Tensor:
    """One seed shared by every rank for global step ``step`` of ``epoch`` (the per-batch coin)."""
    return torch.from_numpy(derive_seeds(seed ^ Stream.DIFFSTYLETS_BATCH, 1, offset=(epoch << 32) + step)).to(device)


def other_class(y: torch.Tensor, num_classes: int, seeds: torch.Tensor | None = None) -> torch.Tensor:
    """A target class different from y: 1 - y for two classes, else a seeded random other class."""
    if num_classes == 2:
        return 1 - y
    if seeds is None:
        raise ValueError("other_class needs per-sample seeds for more than two classes")
    return (y + randint(seeds, 1, num_classes, S_TARGET)) % num_classes


class StageLoss(nn.Module):
    """The loss of one DiffStyleTS training step; ``forward(x, y, seeds, coin_seed) -> (loss, metrics)``.

    ``x`` is already normalised. Stage 1 (both modes): w_recon eps-MSE + w_style CE + w_kl KL. Stage
    2 ``faithful``: eps-MSE only (the reference). Stage 2 ``improved``: stage-1 terms + w_flip judge
    CE of a guided one-step x0 towards the other class + w_sim MSE(x0, x). The judge is frozen and
    NOT a registered submodule (DDP neither syncs nor broadcasts it).
    """

    def __init__(self, model: DiffStyleTS, cfg: TrainConfig, mode: str, *, stage: int = 1, clamp: float = 3.0,
                 judge: Any = None, judge_index: torch.Tensor | None = None,
                 normaliser: Normaliser | None = None) -> None:
        super().__init__()
        self.model, self.cfg, self.mode, self.stage, self.clamp = model, cfg, mode, stage, clamp
        self.null = model.cfg.null_class
        self.num_classes = model.cfg.num_classes
        self.schedule = NoiseSchedule.cosine()
        self.T = self.schedule.num_train_timesteps
        self.__dict__["judge"] = judge  # plain attribute: no parameters/buffers of the judge in this module
        self.__dict__["judge_index"] = judge_index
        self.__dict__["normaliser"] = normaliser or Normaliser()

    # ---- draws -----------------------------------------------------------------------------------
    def cfg_labels(self, y: torch.Tensor, seeds: torch.Tensor, coin_seed: torch.Tensor) -> torch.Tensor:
        """Classifier-free dropout to the null class: one coin per batch (faithful) or per sample."""
        p = self.cfg.cfg_dropout
        drop = uniform(coin_seed, S_BATCH) < p if self.mode == "faithful" else uniform(seeds, S_CFG) < p
        return torch.where(drop, torch.full_like(y, self.null), y)

    # ---- loss ------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor, seeds: torch.Tensor, coin_seed: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m, cfg = self.model, self.cfg
        mu, logvar = m.content_encoder.moments(x)
        eps_vae = randn(seeds, (mu.shape[1],), stream=S_VAE, device=x.device).to(mu.dtype)
        z = mu + eps_vae * torch.exp(0.5 * logvar) if m.content_encoder.training else mu
        style, logits = m.style_encoder(x)
        t = randint(seeds, 0, self.T, S_T)
        noise = randn(seeds, tuple(x.shape[1:]), stream=S_NOISE, device=x.device)
        eps_hat = m.unet(self.schedule.add_noise(x, noise, t), t, z, style, self.cfg_labels(y, seeds, coin_seed))
        mse = F.mse_loss(eps_hat.float(), noise)
        ce = F.cross_entropy(logits.float(), y)
        kl = kl_divergence(mu.float(), logvar.float())
        loss = cfg.w_recon * mse
        if self.stage == 1 or self.mode == "improved":
            loss = loss + cfg.w_style * ce + cfg.w_kl * kl
        metrics = {"mse": mse.detach(), "ce": ce.detach(), "kl": kl.detach()}
        if self.stage == 2 and self.mode == "improved":
            flip, sim = self.flip_terms(x, y, seeds, z, style)
            loss = loss + cfg.w_flip * flip + cfg.w_sim * sim
            metrics.update(flip=flip.detach(), sim=sim.detach())
        return loss, metrics

    def judge_logits(self, x_model: torch.Tensor) -> torch.Tensor:
        x = self.normaliser.inverse(x_model.float())
        if x.is_cuda and torch.is_grad_enabled():
            # cuDNN's LSTM has no backward in eval mode (why the reference forced train() on its judge);
            # the native kernels do, so the judge stays in eval mode with frozen BatchNorm statistics.
            with torch.backends.cudnn.flags(enabled=False):
                logits = self.judge(x)
        else:
            logits = self.judge(x)
        return logits if self.judge_index is None else logits[:, self.judge_index]

    def flip_terms(self, x: torch.Tensor, y: torch.Tensor, seeds: torch.Tensor, content: torch.Tensor,
                   style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Improved stage 2: guided one-step x0 towards y' through the frozen judge, with gradients."""
        cfg = self.cfg
        target = other_class(y, self.num_classes, seeds)
        t_hi = self.schedule.sdedit_start(cfg.flip_strength, cfg.flip_steps)
        t = randint(seeds, max(1, t_hi // 2), t_hi + 1, S_T2)
        x_t = self.schedule.add_noise(x, randn(seeds, tuple(x.shape[1:]), stream=S_NOISE2, device=x.device), t)
        eps, _, _ = guided_eps(self.model.unet, x_t, t, content, style, target, self.null, cfg.flip_guidance)
        x0 = self.schedule.predict_x0(x_t, eps.float(), t).clamp(-self.clamp, self.clamp)
        sim = F.mse_loss(x0, x)
        if self.judge is None:
            return torch.zeros((), device=x.device), sim
        return F.cross_entropy(self.judge_logits(x0).float(), target), sim

    @torch.no_grad()
    def monitor(self, x: torch.Tensor, y: torch.Tensor, seeds: torch.Tensor) -> dict[str, torch.Tensor]:
        """Faithful stage 2: the reference's no-grad SDEdit flip/similarity numbers (they train nothing)."""
        model, cfg = self.model, self.cfg
        was_training = model.training
        model.eval()
        try:
            content, style = model.encode(x)
            target = other_class(y, self.num_classes, seeds)
            cf, _ = sdedit(model.unet, self.schedule, x, content, style, target,
                           seeds ^ MONITOR_SALT, null_class=self.null, strength=cfg.flip_strength,
                           steps=cfg.flip_steps, guidance=cfg.flip_guidance, clamp=self.clamp, mode="faithful")
        finally:
            model.train(was_training)
        out = {"sim": F.mse_loss(cf, x)}
        if self.judge is not None:
            out["flip"] = F.cross_entropy(self.judge_logits(cf).float(), target)
        return out


class ModelEMA:
    """The core's EMA of the DiffStyleTS weights that also accepts the :class:`StageLoss` around them.

    ``train_steps`` updates the EMA with the module it trains (the loss module); the average is kept
    over the model's own keys, so one EMA serves both stages and the single-process Trainer.
    """

    def __new__(cls, model: Any, decay: float) -> Any:
        from augframe.training import EMA

        class _ModelEMA(EMA):
            def update(self, module: Any) -> None:
                super().update(module.model if isinstance(module, StageLoss) else module)

        return _ModelEMA(model, decay)


def loss_step(model: Any, x: torch.Tensor, y: torch.Tensor, seeds: torch.Tensor, coin_seed: torch.Tensor
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run the (possibly DDP-wrapped) :class:`StageLoss` and, in faithful stage 2, its monitor."""
    from augframe.distributed import unwrap

    inner: StageLoss = unwrap(model)
    loss, metrics = model(x, y, seeds, coin_seed)
    if inner.stage == 2 and inner.mode == "faithful":
        monitor = inner.monitor(x, y, seeds)
        metrics = {**metrics, **monitor}
        # the reference's logged total (its constants included); the optimised loss stays the eps-MSE
        metrics["total"] = loss.detach() + sum(inner.cfg.w_flip * v if k == "flip" else inner.cfg.w_sim * v
                                               for k, v in monitor.items())
    return loss, metrics


def epoch_steps(n: int, cfg: TrainConfig) -> int:
    """Optimiser steps in one epoch of ``n`` windows: full global batches, capped by ``max_steps_per_epoch``."""
    return max(1, min(n // cfg.batch_size, cfg.max_steps_per_epoch or n))


def train_stage(ctx: Any, model: DiffStyleTS, data: Any, *, stage: int, mode: str, cfg: TrainConfig,
                normaliser: Normaliser, seed: int = 0, epochs: int | None = None, max_steps: int | None = None,
                judge: Any = None, judge_index: torch.Tensor | None = None,
                state_path: str | Path | None = None, log: Any = None, log_every: int | None = None,
                config: Mapping[str, Any] = {}, optimizer: Any = None, ema: Any = None, precision: str = "auto",
                start: Any = None) -> tuple[Any, Any, Any]:
    """Train one DiffStyleTS stage with :func:`augframe.distributed.train_steps` on this rank.

    ``ctx`` comes from :func:`augframe.distributed.init_distributed` (a one-process context runs the
    same loop unwrapped). ``cfg.batch_size`` is the GLOBAL batch; the model's BatchNorm is converted
    so its statistics span all ranks. Stage 2 seeds its epochs with ``seed + 1`` so its order and
    noise differ from stage 1's. Pass stage 1's ``optimizer`` / ``ema`` (returned) to stage 2 to keep
    their state. The trained weights are in ``model``. The log gets one record per epoch (or every
    ``log_every`` steps), the state file one every ``cfg.checkpoint_every`` epochs and at the end;
    ``start`` continues an earlier call in memory. Returns ``(TrainProgress, optimizer, EMA or None)``;
    the caller copies the EMA in when it is done. Dropout (``model.dropout``) draws from each
    process's own RNG: set it to 0 for runs that must equal a one-process run bit for bit.
    """
    from augframe.distributed import TrainPlan, train_steps, unwrap, wrap_model

    if stage not in (1, 2):
        raise ValueError(f"stage={stage} must be 1 or 2")
    if stage == 2 and mode == "improved" and judge is not None:
        judge = judge.to(ctx.device).eval()
        for p in judge.parameters():
            p.requires_grad_(False)
    loss_module = StageLoss(model, cfg, mode, stage=stage, clamp=normaliser.clamp, judge=judge,
                            judge_index=judge_index, normaliser=normaliser)
    # faithful stage 2 drops the style head's CE, so DDP must expect parameters without gradients
    wrapped = wrap_model(loss_module, ctx, find_unused_parameters=(stage == 2 and mode == "faithful"))
    inner = unwrap(wrapped).model
    opt = optimizer or torch.optim.AdamW(inner.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if ema is None and cfg.ema_decay:
        ema = ModelEMA(inner, cfg.ema_decay)
    n_epochs = epochs if epochs is not None else (cfg.stage1_epochs if stage == 1 else cfg.stage2_epochs)
    plan_seed = seed + (stage - 1)
    per_epoch = epoch_steps(len(data), cfg)
    plan = TrainPlan(global_batch=cfg.batch_size, seed=plan_seed, epochs=n_epochs, max_steps=max_steps,
                     max_steps_per_epoch=cfg.max_steps_per_epoch, grad_clip=cfg.grad_clip,
                     checkpoint_every=(cfg.checkpoint_every or 0) * per_epoch or None, log_every=log_every or per_epoch,
                     num_workers=cfg.num_workers, autocast=precision != "float32", cpu_bf16=precision == "bfloat16",
                     progress=cfg.progress, desc=f"diffstylets stage {stage}")

    def loss_fn(m: Any, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = normaliser.forward(batch.x.float())
        coin = batch_seed(plan_seed, batch.epoch, batch.step, x.device)
        return loss_step(m, x, batch.y.long(), batch.seeds, coin)

    progress = train_steps(ctx, wrapped, opt, data, loss_fn, plan, modules={"model": inner}, ema=ema,
                           state_path=state_path, log=log, config=config, log_fields={"stage": stage}, start=start)
    return progress, opt, ema
