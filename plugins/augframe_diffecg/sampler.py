"""DDIM sampling with the known part re-imposed at every step (replacement, RePaint-style).

At each visited step t the known entries of x_t are overwritten with a fresh forward-diffused copy
of the known signal, q(x_t | x_0 = known), and the final output takes the known entries verbatim,
so known samples are exact in the output. With a ``prior`` other than ``"none"`` the chain runs on
the residual from the prior's fill (zero on the known entries) and the output is fill + residual.
All noise comes from :func:`augframe.seeding.randn` with the per-sample seeds: stream 0 is the
initial noise, stream 2k+1 the replacement noise of step k and stream 2k+2 the DDIM (eta > 0)
noise of step k. A sample's output therefore depends only on its own seed and inputs, not on the
batch it is in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from augframe.seeding import randn

from augframe_diffecg.prior import prior_fill
from augframe_diffecg.schedule import Schedule


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def ddim_sample(model: torch.nn.Module, schedule: Schedule, known: torch.Tensor, mask: torch.Tensor,
                labels: torch.Tensor, seeds: Any, steps: int = 50, eta: float = 0.0, guidance: float = 1.0,
                clip_x0: float | None = 6.0, prior: str = "none", period: int = 0) -> torch.Tensor:
    """x_0 ``[N, leads, samples]`` (in the model's scaled units) with ``known`` kept where ``mask``.

    ``guidance`` follows the diffusers convention: eps = eps_u + s (eps_c - eps_u), s = 1 is plain
    conditional sampling. ``clip_x0`` clamps the predicted x_0 (scaled units) at each step; None
    turns clamping off. ``prior`` and ``period`` must be the model's (its config's).
    """
    device = known.device
    n, leads, s = known.shape
    maskb = mask.to(device=device, dtype=torch.bool)
    maskf = maskb.to(known.dtype)
    known = known * maskf
    base = prior_fill(prior, known, maskf, period)
    target = known - base  # what the chain must reproduce on the known entries (0 with a fill)
    ab_all = schedule.alphas_cumprod_tensor(device)
    grid = schedule.ddim_timesteps(steps)
    x = randn(seeds, (leads, s), stream=0, device=device)
    null = torch.full_like(labels, -1)
    any_known = bool(maskb.any())
    for k, t in enumerate(grid):
        ab = ab_all[int(t)]
        if any_known:
            x_known = ab.sqrt() * target + (1 - ab).sqrt() * randn(seeds, (leads, s), stream=2 * k + 1, device=device)
            x = torch.where(maskb, x_known, x)
        tt = torch.full((n,), int(t), device=device, dtype=torch.long)
        with _autocast(device):
            eps = model(x, tt, known, maskf, labels).float()
            if guidance != 1.0:
                eps_u = model(x, tt, known, maskf, null).float()
                eps = eps_u + guidance * (eps - eps_u)
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        if k == len(grid) - 1:
            x = x0
            break
        ab_prev = ab_all[int(grid[k + 1])]
        sigma = eta * ((1 - ab_prev) / (1 - ab)).sqrt() * (1 - ab / ab_prev).sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).clamp(min=0).sqrt() * eps
        if eta > 0:
            x = x + sigma * randn(seeds, (leads, s), stream=2 * k + 2, device=device)
    return torch.where(maskb, known, base + x)


def timestep_table(schedule: Schedule, steps: int) -> np.ndarray:
    """The timesteps a DDIM call visits (for provenance)."""
    return schedule.ddim_timesteps(steps)
