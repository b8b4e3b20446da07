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

import torch

from augframe.diffusion import NoiseSchedule, guide
from augframe.seeding import randn

from augframe_diffecg.prior import prior_fill


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def ddim_sample(model: torch.nn.Module, schedule: NoiseSchedule, known: torch.Tensor, mask: torch.Tensor,
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
    grid = schedule.set_timesteps(steps)
    x = randn(seeds, (leads, s), stream=0, device=device)
    null = torch.full_like(labels, -1)
    any_known = bool(maskb.any())
    for k, t in enumerate(grid):
        if any_known:
            x = torch.where(maskb, schedule.add_noise(target, randn(seeds, (leads, s), stream=2 * k + 1, device=device), t), x)
        tt = torch.full((n,), t, device=device, dtype=torch.long)
        with _autocast(device):
            eps = model(x, tt, known, maskf, labels).float()
            if guidance != 1.0:
                eps = guide(eps, model(x, tt, known, maskf, null).float(), guidance)
        prev = grid[k + 1] if k + 1 < len(grid) else None
        x, _ = schedule.step(eps, t, x, prev, eta=eta, clip=clip_x0, use_clipped_model_output=True,
                             noise=lambda k=k: randn(seeds, (leads, s), stream=2 * k + 2, device=device))
    return torch.where(maskb, known, base + x)
