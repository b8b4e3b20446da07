"""Gaussian diffusion for SSSD-ECG: linear schedule, epsilon loss, ancestral and DDIM samplers.

All noise comes from :func:`augframe.seeding.randn` keyed by per-sample seeds, with one stream per
use (0 = initial noise, 1 = training noise, 2 = training steps, 1000 + t = ancestral step t), so a
sample's output does not depend on the batch it is drawn in.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import numpy as np
import torch

from augframe.errors import ValidationError
from augframe.seeding import randn

STREAM_INIT = 0
STREAM_TRAIN_NOISE = 1
STREAM_TRAIN_STEP = 2
STREAM_STEP0 = 1000

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@attrs.frozen
class Schedule:
    """Linear beta schedule (paper: T = 200, beta 1e-4 -> 0.02)."""

    steps: int = 200
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __attrs_post_init__(self) -> None:
        if self.steps < 1 or not 0 < self.beta_start <= self.beta_end < 1:
            raise ValidationError(
                f"diffusion schedule steps={self.steps}, betas {self.beta_start}->{self.beta_end}: "
                "need steps >= 1 and 0 < beta_start <= beta_end < 1"
            )

    def betas(self, device: torch.device | str | None = None) -> torch.Tensor:
        """float64 betas ``[T]`` (kept in double so alpha-bar products are exact enough)."""
        return torch.linspace(self.beta_start, self.beta_end, self.steps, dtype=torch.float64, device=device)

    def alpha_bars(self, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.cumprod(1.0 - self.betas(device), dim=0)


def training_loss(model: Denoiser, x0: torch.Tensor, labels: torch.Tensor, schedule: Schedule,
                  seeds: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the predicted noise at a uniformly drawn step (per-sample seeds)."""
    n = x0.shape[0]
    u = randn(seeds, (1,), stream=STREAM_TRAIN_STEP, device=x0.device)[:, 0]
    # a normal draw through its CDF gives a uniform step index, from the same counter-based noise
    t = (0.5 * (1.0 + torch.erf(u / np.sqrt(2.0))) * schedule.steps).long().clamp_(0, schedule.steps - 1)
    eps = randn(seeds, tuple(x0.shape[1:]), stream=STREAM_TRAIN_NOISE, device=x0.device)
    ab = schedule.alpha_bars(x0.device)[t].float().view(n, 1, 1)
    xt = ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps
    return torch.mean((model(xt, t, labels).float() - eps) ** 2)


@torch.no_grad()
def sample_ancestral(model: Denoiser, labels: torch.Tensor, seeds: np.ndarray, shape: tuple[int, int],
                     schedule: Schedule) -> torch.Tensor:
    """The paper's sampler: all T steps, posterior variance beta-tilde (DDPM / DiffWave)."""
    device = labels.device
    betas = schedule.betas(device)
    alphas = 1.0 - betas
    ab = torch.cumprod(alphas, 0)
    ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
    sigma = (betas * (1.0 - ab_prev) / (1.0 - ab)).sqrt()
    x = randn(seeds, shape, stream=STREAM_INIT, device=device)
    for t in range(schedule.steps - 1, -1, -1):
        tt = torch.full((len(x),), t, device=device, dtype=torch.long)
        eps = model(x, tt, labels).float()
        x = (x - (betas[t] / (1.0 - ab[t]).sqrt()).float() * eps) / alphas[t].sqrt().float()
        if t > 0:
            x = x + sigma[t].float() * randn(seeds, shape, stream=STREAM_STEP0 + t, device=device)
    return x


def ddim_timesteps(total: int, steps: int) -> np.ndarray:
    """Descending steps ``T-1 .. 0`` evenly spaced (rounded linspace), always ending at step 0."""
    if not 1 <= steps <= total:
        raise ValidationError(f"DDIM steps={steps} must lie in 1..{total} (the trained diffusion steps)")
    return np.unique(np.round(np.linspace(0, total - 1, steps)).astype(np.int64))[::-1].copy()


@torch.no_grad()
def sample_ddim(model: Denoiser, labels: torch.Tensor, seeds: np.ndarray, shape: tuple[int, int],
                schedule: Schedule, steps: int = 50, eta: float = 0.0) -> torch.Tensor:
    """DDIM (Song et al. 2021) over a sub-sequence of steps; ``eta=1`` is DDPM-like, 0 deterministic."""
    device = labels.device
    ab = schedule.alpha_bars(device)
    ts = ddim_timesteps(schedule.steps, steps)
    x = randn(seeds, shape, stream=STREAM_INIT, device=device)
    for i, t in enumerate(ts):
        t_prev = int(ts[i + 1]) if i + 1 < len(ts) else -1
        a_t = ab[t]
        a_prev = ab[t_prev] if t_prev >= 0 else ab.new_tensor(1.0)
        tt = torch.full((len(x),), int(t), device=device, dtype=torch.long)
        eps = model(x, tt, labels).float()
        x0 = (x - (1.0 - a_t).sqrt().float() * eps) / a_t.sqrt().float()
        sig = eta * ((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev)).sqrt()
        x = a_prev.sqrt().float() * x0 + (1.0 - a_prev - sig**2).clamp_min(0).sqrt().float() * eps
        if eta > 0 and t_prev >= 0:
            x = x + sig.float() * randn(seeds, shape, stream=STREAM_STEP0 + int(t), device=device)
    return x
