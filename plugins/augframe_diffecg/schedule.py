"""The DDPM noise schedule (T = 1000, linear betas 1e-4 -> 0.02) and the DDIM timestep grid."""

from __future__ import annotations

import attrs
import numpy as np
import torch

from augframe.errors import ValidationError


@attrs.frozen(eq=False)
class Schedule:
    """Linear-beta DDPM schedule; ``alphas_cumprod[t]`` is the signal fraction at step t."""

    num_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __attrs_post_init__(self) -> None:
        if self.num_steps < 2:
            raise ValidationError(f"Schedule.num_steps={self.num_steps}; use at least 2 diffusion steps")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValidationError(
                f"Schedule betas {self.beta_start} -> {self.beta_end} must satisfy 0 < start < end < 1"
            )

    @property
    def betas(self) -> np.ndarray:
        return np.linspace(self.beta_start, self.beta_end, self.num_steps, dtype=np.float64)

    @property
    def alphas_cumprod(self) -> np.ndarray:
        """float64 cumulative product of (1 - beta), computed once in double precision."""
        return np.cumprod(1.0 - self.betas)

    def alphas_cumprod_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.as_tensor(self.alphas_cumprod, dtype=torch.float32, device=device)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, per sample t."""
        ab = self.alphas_cumprod_tensor(x0.device)[t].view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise

    def ddim_timesteps(self, steps: int) -> np.ndarray:
        """Descending DDIM grid of ``steps`` timesteps from T-1 down to 0 (both ends included).

        Evenly spaced in t and rounded ("linspace" spacing): generation starts from pure noise at
        t = T-1 and the last step lands on t = 0, unlike diffusers' "leading" default.
        """
        if not 1 <= int(steps) <= self.num_steps:
            raise ValidationError(
                f"DDIM steps={steps} must lie in 1..{self.num_steps} (the number of diffusion steps)"
            )
        if steps == 1:
            return np.array([self.num_steps - 1], dtype=np.int64)
        grid = np.round(np.linspace(self.num_steps - 1, 0, int(steps))).astype(np.int64)
        return np.unique(grid)[::-1].copy()
