"""The completion prior: what the model starts from before it diffuses (``DiffECGConfig.prior``).

* ``"none"`` (the paper as we read it): C1 is the known part with zeros in the gaps, and the
  diffusion runs on the signal itself.
* ``"linear"``: C1 is the known part with every gap filled by linear interpolation (held flat
  before the first and after the last known sample; zero where nothing is known), and the
  diffusion runs on the residual x - fill, which is exactly zero on the known samples. The
  output is fill + residual. The model then refines a cheap estimate instead of re-inventing the
  gap; with nothing known (generation) the fill is zero and nothing changes. The same idea as a
  deterministic predictor followed by a diffusion model of its residual (e.g. CorrDiff,
  Mardani et al. 2023), with linear interpolation as the predictor.
* ``"repeat"``: as ``"linear"``, but an unknown sample whose sample one ``period`` earlier is
  known takes that value instead: the previous beat repeated. Meant for inputs laid out with a
  fixed beat period, such as an R-aligned beat preceded by its neighbour beat (period = the beat
  length); there the fill is exactly the previous-beat baseline and the chain refines it.
"""

from __future__ import annotations

import torch

PRIORS = ("none", "linear", "repeat")


def linear_fill(known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``known`` with the unknown entries (``mask`` False) linearly interpolated along time.

    Vectorised over ``[..., samples]`` (no loop over rows): the previous and next known index of
    every position come from a running max / min. Positions before the first (after the last)
    known sample take its value, as :func:`numpy.interp` does; rows with nothing known are zero.
    Known entries are returned unchanged.
    """
    maskb = mask.to(torch.bool)
    s = known.shape[-1]
    pos = torch.arange(s, device=known.device).expand(known.shape)
    prev = torch.where(maskb, pos, torch.full_like(pos, -1)).cummax(dim=-1).values
    nxt = torch.where(maskb, pos, torch.full_like(pos, s)).flip(-1).cummin(dim=-1).values.flip(-1)
    has_prev, has_next = prev >= 0, nxt < s
    prev_c, next_c = prev.clamp(min=0), nxt.clamp(max=s - 1)
    v_prev = known.gather(-1, prev_c)
    v_next = known.gather(-1, next_c)
    span = (next_c - prev_c).clamp(min=1).to(known.dtype)
    w = ((pos - prev_c).to(known.dtype) / span).clamp(0, 1)
    inner = v_prev + (v_next - v_prev) * w
    out = torch.where(has_prev & has_next, inner, torch.where(has_prev, v_prev, v_next))
    out = torch.where(has_prev | has_next, out, torch.zeros_like(out))
    return torch.where(maskb, known, out)


def repeat_fill(known: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor, period: int) -> torch.Tensor:
    """``fill`` with every unknown sample whose sample ``period`` earlier is known set to that value."""
    maskb = mask.to(torch.bool)
    s = known.shape[-1]
    if not 1 <= period < s:
        return fill
    pad = known.shape[:-1] + (period,)
    earlier = torch.cat([known.new_zeros(pad), (known * mask.to(known.dtype))[..., : s - period]], dim=-1)
    earlier_known = torch.cat([maskb.new_zeros(pad), maskb[..., : s - period]], dim=-1)
    return torch.where(earlier_known & ~maskb, earlier, fill)


def prior_fill(prior: str, known: torch.Tensor, mask: torch.Tensor, period: int = 0) -> torch.Tensor:
    """The estimate the diffusion refines: zeros (``"none"``), :func:`linear_fill` (``"linear"``),
    or the linear fill overwritten by the known samples one ``period`` earlier (``"repeat"``)."""
    if prior == "none":
        return torch.zeros_like(known)
    fill = linear_fill(known * mask.to(known.dtype), mask)
    return repeat_fill(known, mask, fill, period) if prior == "repeat" else fill
