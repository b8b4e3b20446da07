"""The DiffECG denoiser: a 1-D U-Net predicting the noise, conditioned on the diffusion step, the
class, C1 = the known part of the signal (masked) and C2 = the mask.

C2 always enters as input channels next to x_t (it is needed at full time resolution). C1 enters
in one of three ways (``cond``):

* ``"stft"`` (the paper's choice): a spectrogram branch. ``torch.stft`` of the masked known part
  (real and imaginary parts, so nothing is lost) plus the known fraction of each STFT frame go
  through a small conv encoder; its features are resampled to every U-Net level and added there.
* ``"time"``: C1 concatenated to the input channels (SSSD/CSDI style).
* ``"both"``: both paths.

With ``prior="linear"`` or ``"repeat"`` (see :mod:`augframe_diffecg.prior`) C1 is the known part
with its gaps filled by the prior instead of zeros, on both paths, and the network predicts the
noise of the residual from that fill.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from augframe.errors import ValidationError

from augframe_diffecg.prior import PRIORS, prior_fill

COND_MODES = ("stft", "time", "both")


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding [N, dim] of integer steps, cos half first."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _groups(ch: int) -> int:
    for g in (8, 4, 2, 1):
        if ch % g == 0:
            return g
    return 1


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the (step + class) embedding as a FiLM scale and shift."""

    def __init__(self, cin: int, cout: int, emb_dim: int, dilation: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv1d(cin, cout, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(cout, cout, 3, padding=dilation, dilation=dilation)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return h + self.skip(x)


class Attention(nn.Module):
    """Multi-head self-attention over time (global context for beat-to-beat copying)."""

    def __init__(self, ch: int, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = max(1, ch // head_dim)
        self.norm = nn.GroupNorm(_groups(ch), ch)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.out = nn.Conv1d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, s = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, s).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(h.transpose(-1, -2).reshape(n, c, s))


class SpectrogramEncoder(nn.Module):
    """C1 -> STFT (real, imag) + per-frame known fraction -> conv features [N, ch, frames]."""

    def __init__(self, n_leads: int, ch: int, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        n_freq = n_fft // 2 + 1
        self.net = nn.Sequential(
            nn.Conv1d(n_leads * (2 * n_freq + 1), ch, 3, padding=1), nn.SiLU(),
            nn.Conv1d(ch, ch, 3, padding=1), nn.SiLU(),
            nn.Conv1d(ch, ch, 3, padding=2, dilation=2), nn.SiLU(),
        )

    def forward(self, known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, leads, s = known.shape
        with torch.autocast(device_type=known.device.type, enabled=False):
            spec = torch.stft(known.float().reshape(n * leads, s), self.n_fft, self.hop, window=self.window,
                              center=True, return_complex=True)  # [N*L, F, frames]
            frames = spec.shape[-1]
            feats = torch.cat([spec.real, spec.imag], dim=1).reshape(n, -1, frames)
            known_frac = F.interpolate(mask.float(), size=frames, mode="area")
            feats = torch.cat([feats, known_frac], dim=1)
        return self.net(feats.to(self.net[0].weight.dtype))


class DiffECGUNet(nn.Module):
    """eps_theta(x_t, t, class, C1, C2) for ECGs ``[N, leads, samples]`` of any length."""

    def __init__(self, n_leads: int = 1, n_classes: int = 2, width: int = 32, mults: Sequence[int] = (1, 2, 2, 4),
                 blocks: int = 2, cond: str = "stft", n_fft: int = 64, hop: int = 16, attention: bool = True,
                 dropout: float = 0.0, prior: str = "none", period: int = 0) -> None:
        super().__init__()
        if cond not in COND_MODES:
            raise ValidationError(f"DiffECG cond={cond!r}; use one of {COND_MODES}")
        if prior not in PRIORS:
            raise ValidationError(f"DiffECG prior={prior!r}; use one of {PRIORS}")
        if width % 8 or width < 8:
            raise ValidationError(f"DiffECG width={width} must be a positive multiple of 8")
        if blocks < 1 or not mults:
            raise ValidationError("DiffECG needs blocks >= 1 and at least one level in mults")
        self.n_leads, self.n_classes, self.cond = n_leads, n_classes, cond
        self.prior, self.period = prior, int(period)
        emb_dim = 4 * width
        self.width = width
        self.time_mlp = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(n_classes + 1, emb_dim)  # index n_classes = no class
        in_ch = n_leads * (3 if cond in ("time", "both") else 2)
        self.conv_in = nn.Conv1d(in_ch, width, 3, padding=1)
        chans = [width * m for m in mults]
        self.spec = SpectrogramEncoder(n_leads, 2 * width, n_fft, hop) if cond in ("stft", "both") else None
        self.spec_proj = nn.ModuleList(nn.Conv1d(2 * width, c, 1) for c in chans) if self.spec else None
        self.down_blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        prev = width
        for i, c in enumerate(chans):
            self.down_blocks.append(nn.ModuleList(ResBlock(prev if b == 0 else c, c, emb_dim, dropout=dropout)
                                                  for b in range(blocks)))
            self.downs.append(nn.Conv1d(c, c, 3, stride=2, padding=1) if i < len(chans) - 1 else nn.Identity())
            prev = c
        self.mid1 = ResBlock(prev, prev, emb_dim, dropout=dropout)
        self.mid_attn = Attention(prev) if attention else nn.Identity()
        self.mid2 = ResBlock(prev, prev, emb_dim, dropout=dropout)
        self.up_blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i in reversed(range(len(chans))):
            c = chans[i]
            self.ups.append(nn.Conv1d(prev, prev, 3, padding=1) if i < len(chans) - 1 else nn.Identity())
            self.up_blocks.append(nn.ModuleList(ResBlock(prev + c if b == 0 else c, c, emb_dim, dropout=dropout)
                                                for b in range(blocks)))
            prev = c
        self.norm_out = nn.GroupNorm(_groups(width), width)
        self.conv_out = nn.Conv1d(width, n_leads, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, known: torch.Tensor, mask: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """``known`` is the known signal (ignored where ``mask`` is 0), ``mask`` is C2 (1 where known),
        ``labels`` -1 = none. C1 is ``known`` with zeros in the gaps, or with the gaps linearly
        interpolated (``prior="linear"``; ``"repeat"`` also copies the previous period)."""
        maskf = mask.to(x_t.dtype)
        known = known * maskf
        if self.prior != "none":
            known = prior_fill(self.prior, known, maskf, self.period)
        cls = torch.where(labels < 0, torch.full_like(labels, self.n_classes), labels)
        emb = self.time_mlp(timestep_embedding(t, self.width).to(x_t.dtype)) + self.class_emb(cls)
        parts = [x_t, maskf] + ([known] if self.cond in ("time", "both") else [])
        h = self.conv_in(torch.cat(parts, dim=1))
        spec = self.spec(known, maskf) if self.spec is not None else None
        skips = []
        for i, (blocks, down) in enumerate(zip(self.down_blocks, self.downs)):
            for b, block in enumerate(blocks):
                h = block(h, emb)
                if b == 0 and spec is not None:
                    h = h + self.spec_proj[i](F.interpolate(spec, size=h.shape[-1], mode="linear",
                                                            align_corners=False).to(h.dtype))
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for blocks, up in zip(self.up_blocks, self.ups):
            skip = skips.pop()
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, size=skip.shape[-1], mode="nearest"))
            h = torch.cat([h, skip], dim=1)
            for block in blocks:
                h = block(h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))
