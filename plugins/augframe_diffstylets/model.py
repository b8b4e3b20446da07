"""The three DiffStyleTS networks: content encoder (VAE), style encoder, FiLM-conditioned UNet.

Module and parameter names follow the reference's state dicts exactly (``encoder.N``, ``fc_mu``,
``down1.cond_proj`` ...), so the reference's weights load with no renaming. Widths and depths come
from :class:`~augframe_diffstylets.config.ModelConfig`; its defaults are the paper configuration.

The UNet's block order lives in one place, :meth:`ConditionalUNet.layout`, and its topology in one
function, :func:`run_levels`: ``forward`` and the CPU engine (:mod:`timemajor`) both walk them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from augframe_diffstylets.config import ModelConfig


def _conv_stack(in_ch: int, widths: list[int], kernels: list[int], norm: str) -> nn.Sequential:
    """Conv1d(stride 2, 'same'-style padding) -> norm -> LeakyReLU(0.2), once per width."""
    layers: list[nn.Module] = []
    for out_ch, k in zip(widths, kernels):
        layers.append(nn.Conv1d(in_ch, out_ch, k, stride=2, padding=k // 2))
        layers.append(nn.BatchNorm1d(out_ch) if norm == "batch" else nn.InstanceNorm1d(out_ch))
        layers.append(nn.LeakyReLU(0.2))
        in_ch = out_ch
    return nn.Sequential(*layers)


class ContentEncoder(nn.Module):
    """VAE encoder with BatchNorm: ECG -> (z, mu, logvar); in eval mode z = mu.

    ``forward(x, eps=None)`` takes the reparameterisation noise explicitly when given (our seeded
    training), else draws it with ``torch.randn_like`` as the reference does.
    """

    def __init__(self, cfg: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        h = cfg.encoder_channels
        widths = [h, 2 * h, 4 * h, 8 * h, 8 * h]
        self.encoder = _conv_stack(cfg.in_channels, widths, [7, 5, 5, 5, 5], "batch")
        self.pool = nn.AdaptiveAvgPool1d(cfg.content_pool)
        flat = widths[-1] * cfg.content_pool
        self.fc_mu = nn.Linear(flat, cfg.content_dim)
        self.fc_logvar = nn.Linear(flat, cfg.content_dim)

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of the posterior."""
        h = self.pool(self.encoder(x)).flatten(1)
        return self.fc_mu(h), self.fc_logvar(h)

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.moments(x)
        if not self.training:
            return mu, mu, logvar
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + eps * torch.exp(0.5 * logvar), mu, logvar


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The reference's KL: -0.5 * mean over batch and dims of (1 + logvar - mu^2 - e^logvar)."""
    return -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


class StyleEncoder(nn.Module):
    """InstanceNorm encoder: ECG -> (style [B, style_dim], class logits [B, num_classes])."""

    def __init__(self, cfg: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        h = cfg.encoder_channels
        widths = [h, 2 * h, 4 * h, 4 * h]
        self.encoder = _conv_stack(cfg.in_channels, widths, [7, 5, 5, 5], "instance")
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc_style = nn.Linear(widths[-1], cfg.style_dim)
        self.classifier = nn.Linear(cfg.style_dim, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        style = self.fc_style(self.pool(self.encoder(x)).flatten(1))
        return style, self.classifier(style)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding in [cos, sin] order, freq_i = exp(-ln(1e4) i / (dim/2)), t as float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    """GN-SiLU-conv, FiLM by (1 + scale, shift) from the condition, GN-SiLU-dropout-conv, plus skip."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv1d(in_ch, out_ch, 3, padding=1)
        self.cond_proj = nn.Linear(cond_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.cond_proj(cond)[:, :, None].chunk(2, dim=1)
        h = h * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SelfAttention1D(nn.Module):
    """Multi-head self-attention over time with GroupNorm, 1x1-conv qkv/proj and a residual.

    The qkv output channel is ``which * C + head * d + c`` (which: q, k, v), as in the reference.
    """

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Attention of ``x``; ``cond`` is ignored (taken so every UNet block has one call form)."""
        b, c, n = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, n)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # [B, heads, L, d]
        out = F.scaled_dot_product_attention(q, k, v)  # scale d**-0.5, softmax over keys
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, n))


class Level(NamedTuple):
    """One resolution level: ``block`` then ``down`` on the way down; ``up`` then ``merge`` (which takes
    the upsampled features concatenated with ``block``'s output) on the way back.

    (A NamedTuple, not a frozen attrs class: ``forward`` builds it, and ``torch.compile`` traces
    tuples but not attrs' frozen ``__setattr__``.)"""

    block: nn.Module
    down: nn.Module
    up: nn.Module
    merge: nn.Module


class Layout(NamedTuple):
    """The UNet's blocks in the order they run: ``stem``, ``levels`` down, ``middle``, ``levels`` back up in
    reverse, then ``out_norm`` and ``out_conv``. ``condition`` holds the modules of the condition vector
    (run by :meth:`ConditionalUNet.condition`). Every child of the UNet appears exactly once."""

    stem: nn.Module
    levels: tuple[Level, ...]
    middle: tuple[nn.Module, ...]
    out_norm: nn.Module
    out_conv: nn.Module
    condition: tuple[nn.Module, ...]

    def blocks(self) -> list[nn.Module]:
        """Every module the layout runs, conditioning aside."""
        level_blocks = [m for lv in self.levels for m in (lv.block, lv.down, lv.up, lv.merge)]
        return [self.stem, *level_blocks, *self.middle, self.out_norm, self.out_conv]

    def map(self, fn: Callable[[nn.Module], nn.Module]) -> Layout:
        """The same layout with every block replaced by ``fn(block)`` (the conditioning kept)."""
        levels = tuple(Level(fn(lv.block), fn(lv.down), fn(lv.up), fn(lv.merge)) for lv in self.levels)
        return Layout(fn(self.stem), levels, tuple(fn(m) for m in self.middle), fn(self.out_norm),
                      fn(self.out_conv), self.condition)


def run_levels(layout: Layout, h: torch.Tensor, cond: torch.Tensor,
               upsample: Callable[[nn.Module, torch.Tensor, int], torch.Tensor], channel_dim: int = 1) -> torch.Tensor:
    """The UNet's topology from the stem's output to the head's input: down the levels (keeping each
    block's output), through the middle, back up with the skip concatenations.

    Shared by :meth:`ConditionalUNet.forward` (``[B, C, L]``) and the time-major engine (``[B, L, C]``,
    ``channel_dim=2``); ``upsample(up, h, n)`` brings ``h`` to the skip's length ``n``.
    """
    skips = []
    for level in layout.levels:
        h = level.block(h, cond)
        skips.append(h)
        h = level.down(h)
    for block in layout.middle:
        h = block(h, cond)
    for level, skip in zip(reversed(layout.levels), reversed(skips)):
        h = level.merge(torch.cat([upsample(level.up, h, skip.shape[3 - channel_dim]), skip], channel_dim), cond)
    return h


def _match_length(h: torch.Tensor, n: int) -> torch.Tensor:
    """Crop (at the end) or zero-pad (at the end) ``h`` to length ``n`` along time."""
    if h.shape[-1] > n:
        return h[..., :n]
    if h.shape[-1] < n:
        return F.pad(h, (0, n - h.shape[-1]))
    return h


class ConditionalUNet(nn.Module):
    """The FiLM UNet: eps_hat = unet(x_t, t, content, style, class_label).

    One condition vector per sample, cond = MLP(sinusoid(t)) + W_c content + W_s style + E[class],
    feeds every ResBlock. ``class_label=None`` adds no class embedding (the reference's 0.0); the
    label ``num_classes`` selects the learned null (unconditional) row.
    """

    def __init__(self, cfg: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        ch, d, g, p = cfg.model_channels, cfg.cond_dim, cfg.norm_groups, cfg.dropout
        c1, c2, c3, c4 = ch, 2 * ch, 4 * ch, 8 * ch
        self.time_embed = nn.Sequential(nn.Linear(cfg.time_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.content_proj = nn.Linear(cfg.content_dim, d)
        self.style_proj = nn.Linear(cfg.style_dim, d)
        self.class_embed = nn.Embedding(cfg.num_classes + 1, d)
        self.input_conv = nn.Conv1d(cfg.in_channels, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, d, g, p)
        self.down2 = ResBlock(c1, c2, d, g, p)
        self.down3 = ResBlock(c2, c3, d, g, p)
        self.down4 = ResBlock(c3, c4, d, g, p)
        self.downsample1 = nn.Conv1d(c1, c1, 3, stride=2, padding=1)
        self.downsample2 = nn.Conv1d(c2, c2, 3, stride=2, padding=1)
        self.downsample3 = nn.Conv1d(c3, c3, 3, stride=2, padding=1)
        self.downsample4 = nn.Conv1d(c4, c4, 3, stride=2, padding=1)
        self.mid1 = ResBlock(c4, c4, d, g, p)
        self.mid_attn = SelfAttention1D(c4, cfg.attention_heads, g)
        self.mid2 = ResBlock(c4, c4, d, g, p)
        self.up4 = ResBlock(2 * c4, c4, d, g, p)
        self.up3 = ResBlock(2 * c3, c3, d, g, p)
        self.up2 = ResBlock(2 * c2, c2, d, g, p)
        self.up1 = ResBlock(2 * c1, c1, d, g, p)
        self.upsample4 = nn.ConvTranspose1d(c4, c4, 4, stride=2, padding=1)
        self.upsample3 = nn.ConvTranspose1d(c4, c3, 4, stride=2, padding=1)
        self.upsample2 = nn.ConvTranspose1d(c3, c2, 4, stride=2, padding=1)
        self.upsample1 = nn.ConvTranspose1d(c2, c1, 4, stride=2, padding=1)
        self.out_norm = nn.GroupNorm(g, c1)
        self.out_conv = nn.Conv1d(c1, cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def condition(self, t: torch.Tensor, content: torch.Tensor, style: torch.Tensor,
                  class_label: torch.Tensor | None) -> torch.Tensor:
        temb = timestep_embedding(t, self.cfg.time_dim).to(self.time_embed[0].weight.dtype)
        cond = self.time_embed(temb)
        cond = cond + self.content_proj(content) + self.style_proj(style)
        if class_label is not None:
            cond = cond + self.class_embed(class_label)
        return cond

    def layout(self) -> Layout:
        """The blocks in the order they run (the one place that order is written)."""
        levels = tuple(Level(getattr(self, f"down{i}"), getattr(self, f"downsample{i}"),
                             getattr(self, f"upsample{i}"), getattr(self, f"up{i}")) for i in range(1, 5))
        return Layout(self.input_conv, levels, (self.mid1, self.mid_attn, self.mid2), self.out_norm, self.out_conv,
                      (self.time_embed, self.content_proj, self.style_proj, self.class_embed))

    def forward(self, x: torch.Tensor, t: torch.Tensor, content: torch.Tensor, style: torch.Tensor,
                class_label: torch.Tensor | None = None) -> torch.Tensor:
        cond = self.condition(t, content, style, class_label)
        layout = self.layout()
        h = run_levels(layout, layout.stem(x), cond, lambda up, h, n: _match_length(up(h), n))
        return layout.out_conv(F.silu(layout.out_norm(h)))


class DiffStyleTS(nn.Module):
    """The three networks together (what a checkpoint holds): content, style encoders and UNet."""

    def __init__(self, cfg: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.content_encoder = ContentEncoder(cfg)
        self.style_encoder = StyleEncoder(cfg)
        self.unet = ConditionalUNet(cfg)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(content mu, style) of ``x``: the deterministic codes the sampler conditions on."""
        mu, _logvar = self.content_encoder.moments(x)
        style, _ = self.style_encoder(x)
        return mu, style


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
