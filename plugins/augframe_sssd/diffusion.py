"""SSSD-ECG's epsilon loss and its ancestral and DDIM samplers on the core's linear schedule.

All noise comes from :func:`augframe.seeding.randn` keyed by per-sample seeds, with one stream per
use (0 = initial noise, 1 = training noise, 2 = training steps, 1000 + t = ancestral step t), so a
sample's output does not depend on the batch it is drawn in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from augframe.diffusion import NoiseSchedule
from augframe.seeding import randn

STREAM_INIT = 0
STREAM_TRAIN_NOISE = 1
STREAM_TRAIN_STEP = 2
STREAM_STEP0 = 1000

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def training_loss(model: Denoiser, x0: torch.Tensor, labels: torch.Tensor, schedule: NoiseSchedule,
                  seeds: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the predicted noise at a uniformly drawn step (per-sample seeds)."""
    u = randn(seeds, (1,), stream=STREAM_TRAIN_STEP, device=x0.device)[:, 0]
    # a normal draw through its CDF gives a uniform step index, from the same counter-based noise
    T = schedule.num_train_timesteps
    t = (0.5 * (1.0 + torch.erf(u / np.sqrt(2.0))) * T).long().clamp_(0, T - 1)
    eps = randn(seeds, tuple(x0.shape[1:]), stream=STREAM_TRAIN_NOISE, device=x0.device)
    xt = schedule.add_noise(x0, eps, t)
    return torch.mean((model(xt, t, labels).float() - eps) ** 2)


@torch.no_grad()
def sample_ancestral(model: Denoiser, labels: torch.Tensor, seeds: np.ndarray, shape: tuple[int, int],
                     schedule: NoiseSchedule) -> torch.Tensor:
    """The paper's sampler: all T steps, posterior variance beta-tilde (DDPM / DiffWave)."""
    device = labels.device
    x = randn(seeds, shape, stream=STREAM_INIT, device=device)
    for t in range(schedule.num_train_timesteps - 1, -1, -1):
        tt = torch.full((len(x),), t, device=device, dtype=torch.long)
        x = schedule.ancestral_step(model(x, tt, labels).float(), t, x,
                                    noise=lambda t=t: randn(seeds, shape, stream=STREAM_STEP0 + t, device=device))
    return x


@torch.no_grad()
def sample_ddim(model: Denoiser, labels: torch.Tensor, seeds: np.ndarray, shape: tuple[int, int],
                schedule: NoiseSchedule, steps: int = 50, eta: float = 0.0) -> torch.Tensor:
    """DDIM (Song et al. 2021) over a sub-sequence of steps; ``eta=1`` is DDPM-like, 0 deterministic."""
    device = labels.device
    ts = schedule.set_timesteps(steps)
    x = randn(seeds, shape, stream=STREAM_INIT, device=device)
    for i, t in enumerate(ts):
        tt = torch.full((len(x),), t, device=device, dtype=torch.long)
        prev = ts[i + 1] if i + 1 < len(ts) else None
        x, _ = schedule.step(model(x, tt, labels).float(), t, x, prev, eta=eta,
                             noise=lambda t=t: randn(seeds, shape, stream=STREAM_STEP0 + t, device=device))
    return x
