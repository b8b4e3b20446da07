"""The reference's noise schedule and the timesteps SDEdit visits.

Cosine schedule (Nichol & Dhariwal, s = 0.008) over T = 1000 steps, computed in float32 exactly as the
reference does: alpha_bar(t) = cos^2(((t/T) + s)/(1 + s) * pi/2) / alpha_bar(0), beta_t = 1 -
alpha_bar(t+1)/alpha_bar(t) clamped to [1e-4, 0.9999], and alpha_bar recomputed as cumprod(1 - beta)
(so alpha_bar[0] = 0.9999, alpha_bar[600] = 0.339).
"""

from __future__ import annotations

import math

import torch

from augframe.errors import ValidationError


class CosineSchedule:
    """Per-timestep tables (float32, on ``device``) and forward noising ``q_sample``."""

    def __init__(self, timesteps: int = 1000, s: float = 0.008, device: torch.device | str = "cpu") -> None:
        self.T = int(timesteps)
        steps = torch.linspace(0, self.T, self.T + 1, dtype=torch.float32)
        f = torch.cos(((steps / self.T) + s) / (1 + s) * math.pi * 0.5) ** 2
        alpha_bar = f / f[0]
        betas = torch.clip(1 - (alpha_bar[1:] / alpha_bar[:-1]), 0.0001, 0.9999)
        self.betas = betas.to(device)
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).to(device)
        self.sqrt_alphas_cumprod = torch.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = torch.sqrt(1.0 - self.alphas_cumprod)

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device: torch.device | str) -> CosineSchedule:
        if torch.device(device) == self.device:
            return self
        out = object.__new__(CosineSchedule)
        out.T = self.T
        for name in ("betas", "alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod"):
            setattr(out, name, getattr(self, name).to(device))
        return out

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise, per-sample t."""
        shape = (-1,) + (1,) * (x0.dim() - 1)
        return (self.sqrt_alphas_cumprod[t].reshape(shape) * x0
                + self.sqrt_one_minus_alphas_cumprod[t].reshape(shape) * noise)


def sdedit_timesteps(strength: float, steps: int, T: int = 1000) -> list[int]:
    """Timesteps the sampler evaluates, in the reference's rule.

    t* = int(T * strength), stride = max(1, t* // steps); the visited steps are the first ``steps``
    multiples of the stride below t*, descending: strength 0.6 and 50 steps gives 588, 576, ..., 12, 0;
    20 steps gives 570, 540, ..., 0; 7 steps 510, 425, ..., 0. The reference noises to t* itself, one
    stride above the first evaluated step (see :func:`noise_level`).
    """
    start = start_timestep(strength, T)
    stride = max(1, start // steps)
    return list(range(0, start, stride))[:steps][::-1]


def start_timestep(strength: float, T: int = 1000) -> int:
    start = int(T * strength)
    if not 0 < start <= T:
        raise ValidationError(f"strength={strength} gives start timestep {start}; use a strength in (0, 1]")
    return start


def noise_level(strength: float, steps: int, mode: str, T: int = 1000) -> int:
    """Timestep the source is noised to before the first step.

    ``faithful``: t* = int(T * strength) as in the reference (600 for 0.6), which is one stride above
    the first evaluated step (588) -- an off-by-one mismatch; it also makes strength 1.0 impossible.
    ``improved``: the first evaluated timestep, so the UNet sees the noise level it is told.
    """
    if mode == "faithful":
        start = start_timestep(strength, T)
        if start >= T:
            raise ValidationError(
                f"strength={strength} is not possible in faithful mode (the reference indexes timestep {T}); "
                "use mode='improved' or a strength below 1"
            )
        return start
    return sdedit_timesteps(strength, steps, T)[0]
