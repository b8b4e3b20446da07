"""The sampler: SDEdit with DDIM steps and classifier-free guidance over ``augframe.diffusion``.

One call turns a batch of sources into a batch of counterfactuals: noise each source to the SDEdit
level, then run DDIM (eta >= 0) down the visited timesteps. Each step runs the conditional and the
unconditional UNet passes as ONE forward of batch 2B and combines them with the reference's
convention eps = eps_u + w (eps_c - eps_u). The x0 estimate is clamped to [-clamp, clamp]; the result at
t = 0 is that estimate. All noise comes from :func:`augframe.seeding.randn` with the sample's own
seed (stream 0 for the initial noise, stream k + 1 for the eta noise of step k), so a sample's
output does not depend on what else is in the batch. :class:`Sampler` binds one request's settings
(steps, strength, guidance, clamp, smoothing) to the schedule; the pipeline hands it the UNet call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import torch

from augframe.diffusion import NoiseSchedule, guide
from augframe.seeding import randn
from augframe.training import autocast
from augframe_diffstylets.config import SamplerConfig
from augframe_diffstylets.smoothing import savgol

EpsModel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
#: The randn stream of an unconditional sample's content code (stream 0 and k + 1 are its x noise).
CONTENT_STREAM = 1 << 20


@attrs.frozen
class Trajectory:
    """What a sampler call visited, for tests and diagnostics."""

    timesteps: list[int]
    noise_t: int
    x: list[torch.Tensor] = attrs.field(factory=list)
    eps_cond: list[torch.Tensor] = attrs.field(factory=list)
    eps_uncond: list[torch.Tensor] = attrs.field(factory=list)


def guided_eps(unet: EpsModel, x: torch.Tensor, t: int | torch.Tensor, content: torch.Tensor, style: torch.Tensor,
               labels: torch.Tensor, null_class: int, guidance: float, fused: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(guided eps, eps_cond, eps_uncond); guidance 1 runs the conditional pass only.

    ``t`` is one timestep for the batch or a per-sample tensor. ``fused`` runs cond and uncond as
    one batch of 2B (ours); ``False`` runs two forwards of B, as the reference does (kept for the
    benchmark baseline).
    """
    b = x.shape[0]
    tt = t if torch.is_tensor(t) else torch.full((b,), int(t), device=x.device, dtype=torch.long)
    if guidance == 1.0:
        eps_c = unet(x, tt, content, style, labels)
        return eps_c, eps_c, None
    null = torch.full_like(labels, null_class)
    if fused:
        eps = unet(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([content, content]),
                   torch.cat([style, style]), torch.cat([labels, null]))
        eps_c, eps_u = eps[:b], eps[b:]
    else:
        eps_c = unet(x, tt, content, style, labels)
        eps_u = unet(x, tt, content, style, null)
    return guide(eps_c, eps_u, guidance), eps_c, eps_u


def _eta_noise(seeds: Any, x: torch.Tensor, stream: int) -> Callable[[], torch.Tensor]:
    """The seeded z of a DDIM step with eta > 0, drawn only if the step needs it."""
    return lambda: randn(seeds, tuple(x.shape[1:]), stream=stream, device=x.device, dtype=x.dtype)


def sdedit(unet: EpsModel, schedule: NoiseSchedule, x0: torch.Tensor, content: torch.Tensor,
           style: torch.Tensor, labels: torch.Tensor, seeds: Any, *, null_class: int, strength: float = 0.6,
           steps: int = 50, guidance: float = 3.0, eta: float = 0.0, clamp: float | None = 3.0,
           mode: str = "improved", noise: torch.Tensor | None = None, fused: bool = True,
           record: bool = False, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, Trajectory]:
    """Counterfactuals of ``x0 [B, C, L]`` towards ``labels``; returns (x0 at t = 0, trajectory).

    ``mode='faithful'`` noises to int(T * strength) (one stride above the first evaluated step, as the
    reference); ``'improved'`` noises to the first evaluated timestep. ``noise`` overrides the seeded
    initial draw (parity tests feed the reference's noise). ``keep`` ``[B, 1 or C, L]`` in [0, 1] marks
    samples of ``x0`` to keep (RePaint-style inpainting): after every step they are replaced by ``x0``
    noised to the new level with the same initial noise, and the result takes them from ``x0``.
    """
    timesteps = schedule.set_timesteps(steps, "leading", strength)
    t_noise = schedule.sdedit_start(strength, steps, faithful=mode == "faithful")
    if noise is None:
        noise = randn(seeds, tuple(x0.shape[1:]), stream=0, device=x0.device, dtype=x0.dtype)
    x = schedule.add_noise(x0, noise, t_noise)
    traj = Trajectory(timesteps, t_noise)
    out = x
    for k, t in enumerate(timesteps):
        eps, eps_c, eps_u = guided_eps(unet, x, t, content, style, labels, null_class, guidance, fused)
        if record:
            traj.x.append(x.detach().clone())
            traj.eps_cond.append(eps_c.detach().float().clone())
            traj.eps_uncond.append(eps_c.detach().float().clone() if eps_u is None else eps_u.detach().float().clone())
        t_prev = timesteps[k + 1] if k + 1 < len(timesteps) else None
        x, out = schedule.step(eps.to(x.dtype), t, x, t_prev, eta=eta, clip=clamp,
                               noise=_eta_noise(seeds, x, k + 1))
        if keep is not None and t_prev is not None:
            known = schedule.add_noise(x0, noise, t_prev)
            x = keep * known + (1 - keep) * x
    if keep is not None:
        out = keep * x0 + (1 - keep) * out
    return out, traj


def ddim_sample(unet: EpsModel, schedule: NoiseSchedule, shape: tuple[int, ...], content: torch.Tensor,
                style: torch.Tensor, labels: torch.Tensor, seeds: Any, *, null_class: int, steps: int = 50,
                guidance: float = 1.0, eta: float = 0.0, clamp: float | None = 3.0) -> torch.Tensor:
    """DDIM from pure noise (the reference's evaluation sampler): x_T ~ N(0, I), ``steps`` even steps."""
    timesteps = schedule.set_timesteps(steps, "leading")
    x = randn(seeds, tuple(shape), stream=0, device=content.device, dtype=torch.float32)
    out = x
    for k, t in enumerate(timesteps):
        eps, _, _ = guided_eps(unet, x, t, content, style, labels, null_class, guidance)
        t_prev = timesteps[k + 1] if k + 1 < len(timesteps) else None
        x, out = schedule.step(eps.to(x.dtype), t, x, t_prev, eta=eta, clip=clamp,
                               noise=_eta_noise(seeds, x, k + 1))
    return out


@attrs.frozen
class Sampler:
    """One request's sampling bound to the schedule: SDEdit for a transfer, DDIM from noise for a
    sample, then Savitzky-Golay smoothing (``cfg.smooth``).

    ``clamp`` is the x0 clamp in model units (improved mode: the normaliser's; faithful: ``cfg.clamp``).
    ``autocast`` runs the UNet steps under bf16 autocast (CUDA); the smoothing stays float32.
    """

    cfg: SamplerConfig
    schedule: NoiseSchedule
    mode: str
    clamp: float
    null_class: int
    autocast: bool = False

    def transfer(self, unet: EpsModel, x: torch.Tensor, content: torch.Tensor, style: torch.Tensor,
                 labels: torch.Tensor, seeds: Any, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Counterfactuals of ``x [B, C, L]`` (model scale) towards ``labels``; ``keep`` as in :func:`sdedit`."""
        c = self.cfg
        with autocast(x.device, enabled=self.autocast):
            out, _ = sdedit(unet, self.schedule, x, content.float(), style.float(), labels, seeds,
                            null_class=self.null_class, strength=c.strength, steps=c.steps, guidance=c.guidance,
                            eta=c.eta, clamp=self.clamp, mode=self.mode, keep=keep)
        out = self._smooth(out.float())
        if keep is None or not c.smooth:
            return out
        return keep * x.float() + (1 - keep) * out  # the kept samples are the source's own, unsmoothed

    def sample(self, unet: EpsModel, shape: tuple[int, ...], content_dim: int, style: torch.Tensor,
               labels: torch.Tensor, seeds: Any) -> torch.Tensor:
        """New ECGs ``[B, *shape]`` of ``labels`` from noise, the content code drawn by seed too."""
        c = self.cfg
        with autocast(style.device, enabled=self.autocast):
            content = randn(seeds, (content_dim,), stream=CONTENT_STREAM, device=style.device)
            out = ddim_sample(unet, self.schedule, shape, content, style.float(), labels, seeds,
                              null_class=self.null_class, steps=c.steps, guidance=c.guidance, eta=c.eta,
                              clamp=self.clamp)
        return self._smooth(out.float())

    def _smooth(self, out: torch.Tensor) -> torch.Tensor:
        return savgol(out, self.cfg.savgol_window, self.cfg.savgol_order) if self.cfg.smooth else out
