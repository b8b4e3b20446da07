"""SSSD-ECG training: the epsilon loss through the core's loop (seeded batches, EMA, exact resume)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from augframe_sssd.generator import SSSDECGGenerator, _TrainSet

LOG_EVERY = 50


def train_model(gen: SSSDECGGenerator, data: _TrainSet, *, seed: int, workdir: Path | None) -> dict[str, Any]:
    """Run ``gen.iterations`` optimiser steps on ``data`` with :func:`augframe.distributed.train_steps`.

    Resumes from ``workdir``'s train state (a state made with other settings is an error).
    """
    import torch

    from augframe.distributed import DistContext, TrainPlan, train_steps
    from augframe.training import EMA, TrainLog
    from augframe_sssd.diffusion import training_loss
    from augframe_sssd.generator import LOG_FILE, STATE_FILE

    model = gen.model
    opt = torch.optim.Adam(model.parameters(), lr=gen.lr)
    ema = EMA(model, gen.ema_decay) if gen.ema_decay else None
    batch = min(gen.batch_size, len(data))
    config = dict(gen.config(), seed=seed, batch_size=batch, lr=gen.lr, ema_decay=gen.ema_decay)
    config.pop("trained_iterations")
    log = TrainLog(workdir / LOG_FILE if workdir is not None else None)
    schedule = gen._schedule()
    scale = float(np.float32(gen.signal_scale))
    per_epoch = len(data) // batch
    plan = TrainPlan(global_batch=batch, seed=seed, epochs=-(-gen.iterations // per_epoch), max_steps=gen.iterations,
                     checkpoint_every=gen.checkpoint_every, log_every=LOG_EVERY, autocast=gen.amp,
                     progress=gen.progress, desc="sssd-ecg")

    def loss_fn(m: Any, b: Any) -> tuple[Any, dict[str, Any]]:
        return training_loss(m, b.x / scale, b.y, schedule, b.seeds), {}

    done = train_steps(DistContext(device=str(gen.device)), model, opt, data, loss_fn, plan, ema=ema,
                       state_path=workdir / STATE_FILE if workdir is not None else None, log=log, config=config)
    if ema is not None:
        ema.copy_to(model)
    model.eval()
    gen.trained_iterations = done.global_step
    return {"iterations": done.global_step, "losses": [(r["global_step"], r["loss"]) for r in log.records],
            "seconds": done.seconds, "signal_scale": float(gen.signal_scale), "batch_size": batch}
