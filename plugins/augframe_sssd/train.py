"""SSSD-ECG training loop: seeded batches, epsilon loss, optional EMA, exact resume from a workdir."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from augframe.errors import CheckpointError
from augframe.seeding import derive_seeds

if TYPE_CHECKING:  # pragma: no cover
    from augframe_sssd.generator import SSSDECGGenerator, _TrainSet

LOG_EVERY = 50


def train_model(gen: SSSDECGGenerator, data: _TrainSet, *, seed: int, workdir: Path | None) -> dict[str, Any]:
    """Run ``gen.iterations`` optimiser steps on ``data``; resumes from ``workdir``'s train state."""
    import torch

    from augframe.training import EMA, EpochSampler, TrainLog, autocast, load_train_state, progress, save_train_state
    from augframe_sssd.diffusion import training_loss
    from augframe_sssd.generator import LOG_FILE, STATE_FILE

    model, device = gen.model, gen.device
    opt = torch.optim.Adam(model.parameters(), lr=gen.lr)
    ema = EMA(model, gen.ema_decay) if gen.ema_decay else None
    batch = min(gen.batch_size, len(data))
    sampler = EpochSampler(len(data), batch, seed=seed, drop_last=True)
    config = dict(gen.config(), seed=seed, batch_size=batch, lr=gen.lr, ema_decay=gen.ema_decay)
    config.pop("trained_iterations")
    state_path = workdir / STATE_FILE if workdir is not None else None
    log = TrainLog(workdir / LOG_FILE if workdir is not None else None)
    step = 0
    if state_path is not None and state_path.exists():
        restored = load_train_state(state_path, modules={"model": model}, optimizers={"opt": opt},
                                    ema={"ema": ema} if ema else {})
        if restored["config"] != config:
            diff = sorted(k for k in set(config) | set(restored["config"])
                          if config.get(k) != restored["config"].get(k))
            raise CheckpointError(f"training state {str(state_path)!r} was made with other settings ({diff}); "
                                  "use a fresh workdir or the same settings to resume")
        step = int(restored["counters"]["step"])

    def checkpoint() -> None:
        if state_path is not None:
            save_train_state(state_path, modules={"model": model}, optimizers={"opt": opt},
                             ema={"ema": ema} if ema else {}, counters={"step": step}, config=config)

    schedule = gen._schedule()
    scale = np.float32(gen.signal_scale)
    steps_per_epoch = sampler.steps_per_epoch()
    model.train()
    running = torch.zeros((), device=device)
    count, started, losses = 0, time.perf_counter(), []
    bar = progress(range(step, gen.iterations), total=gen.iterations - step, desc="sssd-ecg", enabled=gen.progress)
    it = iter(bar)
    while step < gen.iterations:
        epoch, within = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch, within)
        for idx in sampler:
            index = np.asarray(idx)
            x = torch.from_numpy(data.signals(index) / scale).to(device, non_blocking=True)
            y = torch.from_numpy(data.labels[index]).to(device, non_blocking=True)
            seeds = derive_seeds(seed, len(index), offset=step * batch)
            with autocast(device, enabled=gen.amp):
                loss = training_loss(model, x, y, schedule, seeds)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update(model)
            running += loss.detach()
            count += 1
            step += 1
            next(it, None)
            if step % LOG_EVERY == 0 or step == gen.iterations:
                mean = float(running) / count  # one host sync per LOG_EVERY steps
                losses.append((step, mean))
                log.write(step=step, loss=mean, seconds=time.perf_counter() - started)
                running.zero_()
                count = 0
            if step % gen.checkpoint_every == 0:
                checkpoint()
            if step >= gen.iterations:
                break
    checkpoint()
    if ema is not None:
        ema.copy_to(model)
    model.eval()
    gen.trained_iterations = step
    return {"iterations": step, "losses": losses, "seconds": time.perf_counter() - started,
            "signal_scale": float(gen.signal_scale), "batch_size": batch}
