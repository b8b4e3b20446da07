"""The SSSD-ECG denoiser: a DiffWave-style residual stack with bidirectional S4 blocks.

Per residual layer (Alcaraz & Strodthoff 2023, following SSSD): add the projected diffusion-step
embedding, a kernel-3 convolution to twice the residual width, an S4 block, add the projected
label embedding, a second S4 block, a gated tanh * sigmoid unit, then 1x1 convolutions to the
residual path (scaled by sqrt(1/2)) and the skip path. Skips are summed over layers and scaled by
sqrt(1/layers). Labels enter as a multi-hot vector times an embedding table, i.e. the sum of the
embeddings of the statements present.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import attrs
import torch
from torch import nn

from augframe_sssd.s4d import S4D, S4Block


@attrs.frozen
class SSSDConfig:
    """Architecture settings; the defaults are the paper's (PTB-XL, 71 statements, 8 leads, 1000 samples)."""

    in_channels: int = 8
    res_channels: int = 256
    skip_channels: int = 256
    num_layers: int = 36
    s4_state: int = 64
    s4_dropout: float = 0.0
    s4_bidirectional: bool = True
    s4_layer_norm: bool = True
    step_embed_in: int = 128
    step_embed_mid: int = 512
    step_embed_out: int = 512
    num_classes: int = 71
    label_embed_dim: int = 128
    length: int = 1000

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``[B, dim]`` of integer diffusion steps ``t [B]`` (DiffWave form)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def _conv(c_in: int, c_out: int, kernel: int = 1) -> nn.Module:
    """Kaiming-initialised, weight-normalised convolution (as DiffWave/SSSD use)."""
    conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
    nn.init.kaiming_normal_(conv.weight)
    return nn.utils.parametrizations.weight_norm(conv)


class ResidualLayer(nn.Module):
    def __init__(self, cfg: SSSDConfig) -> None:
        super().__init__()
        r = cfg.res_channels
        self.fc_step = nn.Linear(cfg.step_embed_out, r)
        self.conv = _conv(r, 2 * r, 3)
        s4 = dict(d_state=cfg.s4_state, bidirectional=cfg.s4_bidirectional, dropout=cfg.s4_dropout,
                  layer_norm=cfg.s4_layer_norm)
        self.s4_first = S4Block(2 * r, **s4)
        self.fc_label = nn.Linear(cfg.label_embed_dim, 2 * r)
        self.s4_second = S4Block(2 * r, **s4)
        self.res_conv = _conv(r, r)
        self.skip_conv = _conv(r, cfg.skip_channels)

    def forward(self, x: torch.Tensor, step_emb: torch.Tensor, label_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = x.shape[1]
        h = x + self.fc_step(step_emb)[:, :, None]
        h = self.s4_first(self.conv(h))
        h = h + self.fc_label(label_emb)[:, :, None]
        h = self.s4_second(h)
        gated = torch.tanh(h[:, :r]) * torch.sigmoid(h[:, r:])
        return (x + self.res_conv(gated)) * math.sqrt(0.5), self.skip_conv(gated)


class SSSDECG(nn.Module):
    """epsilon-prediction network: ``forward(x [B, leads, L], t [B], labels [B, C]) -> eps [B, leads, L]``."""

    def __init__(self, cfg: SSSDConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.inp = _conv(cfg.in_channels, cfg.res_channels)
        self.step_mlp = nn.Sequential(
            nn.Linear(cfg.step_embed_in, cfg.step_embed_mid), nn.SiLU(),
            nn.Linear(cfg.step_embed_mid, cfg.step_embed_out), nn.SiLU(),
        )
        self.label_table = nn.Parameter(torch.randn(cfg.num_classes, cfg.label_embed_dim))
        self.layers = nn.ModuleList(ResidualLayer(cfg) for _ in range(cfg.num_layers))
        self.skip_out = _conv(cfg.skip_channels, cfg.skip_channels)
        self.out = nn.Conv1d(cfg.skip_channels, cfg.in_channels, 1)
        nn.init.zeros_(self.out.weight)  # the network starts by predicting zero noise
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        step_emb = self.step_mlp(step_embedding(t, self.cfg.step_embed_in))
        label_emb = labels.to(self.label_table.dtype) @ self.label_table  # sum of present classes
        h = torch.relu(self.inp(x))
        skip = torch.zeros((), device=x.device, dtype=torch.float32)  # float32 sum, also under bf16 autocast
        for layer in self.layers:
            h, s = layer(h, step_emb, label_emb)
            skip = skip + s.float()
        skip = skip * math.sqrt(1.0 / len(self.layers))
        return self.out(torch.relu(self.skip_out(skip)))

    @contextlib.contextmanager
    def frozen_kernels(self, length: int) -> Iterator[None]:
        """Compute every S4 kernel once for ``length`` while sampling (weights do not change)."""
        blocks = [m for m in self.modules() if isinstance(m, S4D)]
        try:
            for m in blocks:
                m.freeze_kernel(length)
            yield
        finally:
            for m in blocks:
                m.freeze_kernel(None)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
