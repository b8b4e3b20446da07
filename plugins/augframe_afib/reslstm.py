"""AFibResLSTM: the reference AF classifier (multi-scale front end, 1-D ResNet-34, two BiLSTMs, attention).

The layer layout and attribute names follow the reference (spec section 9), so a reference
``state_dict`` loads with ``strict=True`` and no renaming. At paper width it has 8,310,658
parameters. Unlike the reference, ``forward`` z-scores each ECG itself (mean over time, unbiased
std + 1e-8, the reference's Gate-1 formula), so callers never have to remember to.

``ResLSTMConfig.scaled(width)`` shrinks every channel count for fast CPU tests.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from augframe.errors import CheckpointError, ValidationError

ZSCORE_EPS = 1e-8


def _positive(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
    vals = value if isinstance(value, tuple) else (value,)
    if any(v <= 0 for v in vals):
        raise ValidationError(f"ResLSTMConfig.{attr.name}={value!r} must be positive")


@attrs.frozen
class ResLSTMConfig:
    """Every size of the network; the defaults are the reference's ``ModelConfig``."""

    in_channels: int = attrs.field(default=1, validator=_positive)
    num_classes: int = attrs.field(default=2, validator=_positive)
    multiscale_filters: tuple[int, ...] = attrs.field(default=(32, 32, 32), converter=tuple, validator=_positive)
    multiscale_kernels: tuple[int, ...] = attrs.field(default=(3, 7, 15), converter=tuple, validator=_positive)
    fusion_filters: int = attrs.field(default=64, validator=_positive)
    resnet_layers: tuple[int, ...] = attrs.field(default=(3, 4, 6, 3), converter=tuple, validator=_positive)
    resnet_filters: tuple[int, ...] = attrs.field(default=(64, 128, 256, 512), converter=tuple, validator=_positive)
    lstm_hidden_1: int = attrs.field(default=128, validator=_positive)
    lstm_hidden_2: int = attrs.field(default=64, validator=_positive)
    lstm_dropout: float = 0.3
    attention_heads: int = attrs.field(default=4, validator=_positive)
    #: dropout on the attention weights; None = ``lstm_dropout``, as the reference. Dropout on the
    #: [N, heads, T, T] weights dominates a CPU training step, so CPU-scale runs may set 0.
    attention_dropout: float | None = None
    fc_hidden: int = attrs.field(default=256, validator=_positive)
    dropout: float = 0.5

    def __attrs_post_init__(self) -> None:
        if len(self.multiscale_filters) != len(self.multiscale_kernels):
            raise ValidationError("ResLSTMConfig: one kernel size per multi-scale branch is needed")
        if len(self.resnet_layers) != len(self.resnet_filters):
            raise ValidationError("ResLSTMConfig: resnet_layers and resnet_filters need the same length")
        if any(k % 2 == 0 for k in self.multiscale_kernels):
            raise ValidationError("ResLSTMConfig.multiscale_kernels must be odd ('same' padding)")
        if not 0.0 <= self.attention_p < 1.0:
            raise ValidationError(f"ResLSTMConfig.attention_dropout={self.attention_dropout} must lie in [0, 1)")
        if self.attention_dim % self.attention_heads:
            raise ValidationError(
                f"ResLSTMConfig: attention dim {self.attention_dim} (2 x lstm_hidden_2) is not divisible by "
                f"{self.attention_heads} heads"
            )

    @property
    def attention_p(self) -> float:
        return self.lstm_dropout if self.attention_dropout is None else self.attention_dropout

    @property
    def attention_dim(self) -> int:
        return 2 * self.lstm_hidden_2

    @property
    def embed_dim(self) -> int:
        return self.resnet_filters[-1] + self.attention_dim

    @classmethod
    def scaled(cls, width: float = 1.0, *, depth: Sequence[int] | None = None, **overrides: Any) -> ResLSTMConfig:
        """The paper config with every channel count times ``width`` (and optional block counts)."""
        if width <= 0:
            raise ValidationError(f"width={width} must be positive (1.0 is the paper width)")
        ref = cls()
        heads = ref.attention_heads

        def w(c: int, multiple: int = 1) -> int:
            return max(multiple, int(round(c * width / multiple)) * multiple)

        cfg = dict(
            multiscale_filters=tuple(w(c) for c in ref.multiscale_filters),
            fusion_filters=w(ref.fusion_filters),
            resnet_filters=tuple(w(c) for c in ref.resnet_filters),
            lstm_hidden_1=w(ref.lstm_hidden_1),
            lstm_hidden_2=w(ref.lstm_hidden_2, multiple=heads),
            fc_hidden=w(ref.fc_hidden),
        )
        if depth is not None:
            cfg["resnet_layers"] = tuple(depth)
        cfg.update(overrides)
        return cls(**cfg)


def zscore(x: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-lead z-score over time: (x - mean) / (unbiased std + 1e-8), as the reference."""
    mean = x.mean(dim=-1, keepdim=True)
    std = x.std(dim=-1, keepdim=True, unbiased=True)
    return (x - mean) / (std + ZSCORE_EPS)


class MultiScaleFrontEnd(nn.Module):
    """Parallel convolutions of several kernel sizes, concatenated and fused by a 1x1 convolution."""

    def __init__(self, cfg: ResLSTMConfig) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv1d(cfg.in_channels, f, k, padding=k // 2), nn.BatchNorm1d(f), nn.ReLU(inplace=True))
            for f, k in zip(cfg.multiscale_filters, cfg.multiscale_kernels)
        )
        self.fusion = nn.Sequential(
            nn.Conv1d(sum(cfg.multiscale_filters), cfg.fusion_filters, 1),
            nn.BatchNorm1d(cfg.fusion_filters),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fusion(torch.cat([b(x) for b in self.branches], dim=1))


class BasicBlock1d(nn.Module):
    """ResNet basic block: conv3-BN-ReLU-conv3-BN plus (projected) identity, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity, inplace=True)


class ResNet1d(nn.Module):
    """Stem-less 1-D ResNet: stride 1 in the first stage, 2 in each later one."""

    def __init__(self, cfg: ResLSTMConfig) -> None:
        super().__init__()
        c_in = cfg.fusion_filters
        for i, (n_blocks, c_out) in enumerate(zip(cfg.resnet_layers, cfg.resnet_filters)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(n_blocks):
                blocks.append(BasicBlock1d(c_in, c_out, stride if j == 0 else 1))
                c_in = c_out
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.n_layers = len(cfg.resnet_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.n_layers):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with separate q/k/v/out projections; returns output and per-head weights."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, need_weights: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Output ``[N, T, dim]`` and the weights ``[N, heads, T, T]``; without ``need_weights`` the
        weights are never materialised (fused attention, same maths and dropout) and None is returned."""
        b, t, d = x.shape

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.view(b, t, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        if need_weights:
            scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            weights = torch.softmax(scores, dim=-1)
            out = torch.matmul(self.dropout(weights), v)
        else:
            p = self.dropout.p if self.training else 0.0
            out, weights = F.scaled_dot_product_attention(q, k, v, dropout_p=p), None
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d)), weights


class BiLSTMAttention(nn.Module):
    """Two bidirectional LSTMs with dropout, then self-attention; mean over time."""

    def __init__(self, cfg: ResLSTMConfig) -> None:
        super().__init__()
        self.lstm1 = nn.LSTM(cfg.resnet_filters[-1], cfg.lstm_hidden_1, batch_first=True, bidirectional=True)
        self.lstm2 = nn.LSTM(2 * cfg.lstm_hidden_1, cfg.lstm_hidden_2, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(cfg.lstm_dropout)
        self.attention = MultiHeadSelfAttention(cfg.attention_dim, cfg.attention_heads, cfg.attention_p)

    def forward(self, seq: torch.Tensor, need_weights: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        h, _ = self.lstm1(seq)
        h, _ = self.lstm2(self.dropout(h))
        att, weights = self.attention(self.dropout(h), need_weights)
        return att.mean(dim=1), weights


class AFibResLSTM(nn.Module):
    """The reference AF classifier; ``forward(x [N, leads, samples]) -> logits [N, classes]``.

    ``class_names`` names the logit columns. Input is z-scored per sample inside ``forward``
    (``normalize=False`` turns that off, e.g. to feed already-normalised data bit-exactly).
    """

    def __init__(self, config: ResLSTMConfig | None = None, class_names: Sequence[str] = ("N", "A"),
                 normalize: bool = True) -> None:
        super().__init__()
        self.config = config or ResLSTMConfig()
        if len(class_names) != self.config.num_classes:
            raise ValidationError(
                f"class_names {tuple(class_names)} has {len(class_names)} names for num_classes={self.config.num_classes}"
            )
        self.class_names = tuple(class_names)
        self.normalize = normalize
        cfg = self.config
        self.multiscale = MultiScaleFrontEnd(cfg)
        self.resnet = ResNet1d(cfg)
        self.bilstm_attention = BiLSTMAttention(cfg)
        self.classifier = nn.Sequential(
            nn.Linear(cfg.embed_dim, cfg.fc_hidden), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.fc_hidden, cfg.fc_hidden // 2), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.fc_hidden // 2, cfg.num_classes),
        )

    # ---- forward passes ----------------------------------------------------------------------
    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != self.config.in_channels:
            raise ValidationError(
                f"AFibResLSTM expects [N, {self.config.in_channels}, samples]; got {tuple(x.shape)}"
            )

    def features(self, x: torch.Tensor, need_weights: bool = True) -> dict[str, torch.Tensor | None]:
        """Every stage's output: ``resnet_pooled``, ``lstm_pooled``, ``embedding``, ``attention``, ``logits``
        (``attention`` is None without ``need_weights``: the logits path skips the [N, heads, T, T] tensor)."""
        self._check(x)
        if self.normalize:
            x = zscore(x)
        seq = self.resnet(self.multiscale(x))
        resnet_pooled = seq.mean(dim=-1)
        lstm_pooled, weights = self.bilstm_attention(seq.transpose(1, 2), need_weights)
        emb = torch.cat([resnet_pooled, lstm_pooled], dim=1)
        return {
            "resnet_pooled": resnet_pooled,
            "lstm_pooled": lstm_pooled,
            "embedding": emb,
            "attention": weights,
            "logits": self.classifier(emb),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x, need_weights=False)["logits"]

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, attention weights [N, heads, T, T]): the reference's return value."""
        f = self.features(x)
        return f["logits"], f["attention"]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The head's input: pooled ResNet features and pooled attention output, ``[N, 640]`` at paper width."""
        return self.features(x, need_weights=False)["embedding"]

    # ---- reference wrapper behaviour ---------------------------------------------------------
    @contextlib.contextmanager
    def batch_statistics(self) -> Iterator[AFibResLSTM]:
        """Normalise with each batch's own BatchNorm statistics and no dropout, without touching buffers.

        This is the reference ClassifierWrapper's forward (its stage-2 flip-loss path) minus its side
        effect: the wrapper switches to ``train()`` and so silently updates the running statistics.
        """
        saved_mode = self.training
        bns = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [(m.running_mean, m.running_var) for m in bns]
        self.eval()
        try:
            for m in bns:
                m.running_mean = None
                m.running_var = None
            yield self
        finally:
            for m, (mean, var) in zip(bns, saved):
                m.running_mean, m.running_var = mean, var
            self.train(saved_mode)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def load_reference_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A reference state dict from a ``.pt``/``.pth`` file, upcast to float32.

    Accepts the reference's own checkpoint layouts (``{'model_state_dict': ...}``), the parity
    fixture layout (``{'state_dict': ...}``) and a bare state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"AFibResLSTM checkpoint {path} does not exist; pass an existing .pt/.pth path")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or not a torch file
        raise CheckpointError(f"cannot read AFibResLSTM checkpoint {path}: {exc}") from exc
    if isinstance(obj, dict):
        for key in ("model_state_dict", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no AFibResLSTM state dict (keys 'model_state_dict' or 'state_dict')")
    return {k: (v.float() if v.is_floating_point() else v) for k, v in obj.items()}


def load_state_checked(model: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Strict load with an error that names missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            k = shapes[0]
            parts.append(f"shape mismatch at {len(shapes)} keys, e.g. {k}: checkpoint {tuple(state[k].shape)} "
                         f"vs model {tuple(own[k].shape)}")
        raise CheckpointError(
            f"{origin} does not fit this {type(model).__name__} ({'; '.join(parts)}); build the model with the "
            "config the checkpoint was trained with (width=1.0, default depth for reference AFibResLSTM checkpoints)"
        )
    model.load_state_dict(state, strict=True)
