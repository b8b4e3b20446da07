"""The DDPM / DDIM noise schedule every diffusion generator plugin samples and trains with.

Model-free: a :class:`NoiseSchedule` holds the per-timestep tables (beta_t, alpha-bar_t) and offers
the verbs users know from diffusers -- :meth:`~NoiseSchedule.add_noise` (forward noising),
:meth:`~NoiseSchedule.set_timesteps` (the grid a sampler visits), :meth:`~NoiseSchedule.step` (one
DDIM update, Song et al. 2021) and :meth:`~NoiseSchedule.ancestral_step` (one DDPM update, Ho et al.
2020) -- plus the SDEdit start level (Meng et al. 2022) and the classifier-free guidance combination
:func:`guide` (Ho & Salimans 2022). It draws no randomness: every step that needs noise takes it
from the caller (a tensor, or a zero-argument function called only when the step needs it), so
plugins keep their per-sample seeded streams.

Precision: the tables keep the dtype they were built in (float32 for the cosine schedule, as the
DiffStyleTS reference computes it; float64 or float32 for the linear one, a plugin's choice).
``add_noise`` casts alpha-bar to the sample's dtype before its square roots (as diffusers does); the
step coefficients are computed in the table's dtype and then cast to the sample's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import numpy as np
import torch

from augframe.errors import ValidationError

Noise = torch.Tensor | Callable[[], torch.Tensor] | None
SPACINGS = ("linspace", "leading")


@attrs.frozen
class StepOutput:
    """One sampler update: the sample at the previous timestep and the (clamped) x0 estimate."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor

    def __iter__(self):  # ``x, x0 = schedule.step(...)``
        return iter((self.prev_sample, self.pred_original_sample))


@attrs.frozen(eq=False)
class NoiseSchedule:
    """Per-timestep ``betas`` and ``alphas_cumprod`` (CPU tensors of length T) and the update rules."""

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    _on_device: dict = attrs.field(factory=dict, init=False, repr=False)

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def cosine(cls, num_train_timesteps: int = 1000, s: float = 0.008) -> NoiseSchedule:
        """Cosine schedule (Nichol & Dhariwal 2021) in float32, as the DiffStyleTS reference computes it.

        alpha_bar(t) = cos^2(((t/T) + s)/(1 + s) pi/2) / alpha_bar(0); beta_t = 1 - alpha_bar(t+1)/alpha_bar(t)
        clamped to [1e-4, 0.9999]; alpha-bar recomputed as cumprod(1 - beta) (alpha_bar[0] = 0.9999).
        """
        T = _check_steps(num_train_timesteps)
        steps = torch.linspace(0, T, T + 1, dtype=torch.float32)
        f = torch.cos(((steps / T) + s) / (1 + s) * math.pi * 0.5) ** 2
        alpha_bar = f / f[0]
        betas = torch.clip(1 - (alpha_bar[1:] / alpha_bar[:-1]), 0.0001, 0.9999)
        return cls(betas, torch.cumprod(1.0 - betas, dim=0))

    @classmethod
    def linear(cls, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
               dtype: torch.dtype = torch.float64) -> NoiseSchedule:
        """Linear betas (Ho et al. 2020), alpha-bar as a float64 cumulative product, stored in ``dtype``."""
        T = _check_steps(num_train_timesteps)
        if not 0 < beta_start <= beta_end < 1:
            raise ValidationError(f"diffusion betas {beta_start} -> {beta_end}: need 0 < beta_start <= beta_end < 1")
        betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        return cls(betas.to(dtype), torch.cumprod(1.0 - betas, dim=0).to(dtype))

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def tables(self, device: torch.device | str | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(betas, alphas_cumprod) on ``device``, copied there once."""
        key = str(torch.device(device if device is not None else "cpu"))
        if key not in self._on_device:
            self._on_device[key] = (self.betas.to(key), self.alphas_cumprod.to(key))
        return self._on_device[key]

    def _alpha_bar(self, t: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """alpha-bar at ``t`` (int, or per-sample [B]) in the table dtype, shaped to broadcast over ``like``."""
        ab = self.tables(like.device)[1][t]
        return ab.view(-1, *([1] * (like.dim() - 1))) if ab.dim() else ab

    # ---- forward process ------------------------------------------------------------------------
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise, for one t or per-sample t [B]."""
        ab = self._alpha_bar(t, x0).to(x0.dtype)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def predict_x0(self, x: torch.Tensor, eps: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
        ab = self._alpha_bar(t, x)
        return (x - (1 - ab).sqrt().to(x.dtype) * eps) / ab.sqrt().to(x.dtype)

    # ---- timestep grids -------------------------------------------------------------------------
    def set_timesteps(self, steps: int, spacing: str = "linspace", strength: float = 1.0) -> list[int]:
        """The descending timesteps a sampler visits.

        ``linspace``: ``steps`` rounded, evenly spaced steps from T-1 down to 0 (both ends included).
        ``leading`` (the DiffStyleTS reference's rule, diffusers' "leading" at strength 1): start =
        int(T * strength), stride = max(1, start // steps), the first ``steps`` multiples of the stride
        below start, descending -- strength 0.6 and 50 steps visits 588, 576, ..., 12, 0.
        """
        T = self.num_train_timesteps
        if not 1 <= int(steps) <= T:
            raise ValidationError(f"sampler steps={steps} must lie in 1..{T} (the trained diffusion steps)")
        if spacing == "linspace":
            if steps == 1:
                return [T - 1]
            return [int(t) for t in np.unique(np.round(np.linspace(T - 1, 0, int(steps))).astype(np.int64))[::-1]]
        if spacing == "leading":
            start = self.sdedit_start(strength)
            stride = max(1, start // int(steps))
            return list(range(0, start, stride))[:int(steps)][::-1]
        raise ValidationError(f"timestep spacing={spacing!r}; use one of {SPACINGS}")

    def sdedit_start(self, strength: float, steps: int | None = None, faithful: bool = False) -> int:
        """The timestep SDEdit noises the source to before its first step.

        ``faithful``: int(T * strength) as in the DiffStyleTS reference -- one stride above the first
        visited step, and impossible at strength 1. Otherwise (with ``steps``) the first visited step of
        the ``leading`` grid, so the model sees the noise level it is told; without ``steps``, the raw
        int(T * strength) after validation.
        """
        T = self.num_train_timesteps
        start = int(T * strength)
        if not 0 < start <= T:
            raise ValidationError(f"strength={strength} gives start timestep {start}; use a strength in (0, 1]")
        if faithful:
            if start >= T:
                raise ValidationError(
                    f"strength={strength} is not possible in faithful mode (the reference indexes timestep {T}); "
                    "use mode='improved' or a strength below 1")
            return start
        return start if steps is None else self.set_timesteps(steps, "leading", strength)[0]

    # ---- reverse process ------------------------------------------------------------------------
    def step(self, eps: torch.Tensor, t: int, x: torch.Tensor, prev_t: int | None, *, eta: float = 0.0,
             noise: Noise = None, clip: float | None = None, use_clipped_model_output: bool = False) -> StepOutput:
        """One DDIM update from ``t`` to ``prev_t`` (None: the last step, which returns the x0 estimate).

        x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z, with sigma = eta
        sqrt((1 - ab_prev)/(1 - ab_t)) sqrt(1 - ab_t/ab_prev): eta = 0 is deterministic DDIM, eta = 1
        DDPM-like. ``clip`` clamps x0 to [-clip, clip]; ``use_clipped_model_output`` then re-derives eps
        from the clamped x0. ``noise`` (z) is needed only when eta > 0 and ``prev_t`` is not None.
        """
        ab = self._alpha_bar(t, x)
        x0 = self.predict_x0(x, eps, t)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
            if use_clipped_model_output:
                eps = (x - ab.sqrt().to(x.dtype) * x0) / (1 - ab).sqrt().to(x.dtype)
        if prev_t is None:
            return StepOutput(x0, x0)
        ab_prev = self._alpha_bar(prev_t, x)
        sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab)) * torch.sqrt(1 - ab / ab_prev)
        direction = torch.sqrt(torch.clamp(1 - ab_prev - sigma**2, min=0.0))
        out = ab_prev.sqrt().to(x.dtype) * x0 + direction.to(x.dtype) * eps
        if eta > 0:
            out = out + sigma.to(x.dtype) * _draw(noise, "step with eta > 0")
        return StepOutput(out, x0)

    def ancestral_step(self, eps: torch.Tensor, t: int, x: torch.Tensor, noise: Noise = None) -> torch.Tensor:
        """One DDPM update from ``t`` to t - 1 with the posterior variance beta-tilde (noise unused at t = 0).

        x_{t-1} = (x_t - beta_t / sqrt(1 - ab_t) eps) / sqrt(1 - beta_t) + sqrt(beta_t (1 - ab_{t-1}) / (1 - ab_t)) z.
        """
        betas, abs_ = self.tables(x.device)
        beta, ab = betas[t], abs_[t]
        out = (x - (beta / (1.0 - ab).sqrt()).to(x.dtype) * eps) / (1.0 - beta).sqrt().to(x.dtype)
        if t == 0:
            return out
        sigma = (beta * (1.0 - abs_[t - 1]) / (1.0 - ab)).sqrt()
        return out + sigma.to(x.dtype) * _draw(noise, "ancestral step t > 0")


def guide(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: eps_u + scale (eps_c - eps_u); scale 1 is plain conditional sampling."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def _check_steps(num_train_timesteps: int) -> int:
    T = int(num_train_timesteps)
    if T < 2:
        raise ValidationError(f"num_train_timesteps={num_train_timesteps}; use at least 2 diffusion steps")
    return T


def _draw(noise: Noise, what: str) -> torch.Tensor:
    if noise is None:
        raise ValidationError(f"a {what} needs noise; pass a tensor or a function that draws it")
    return noise() if callable(noise) else noise
