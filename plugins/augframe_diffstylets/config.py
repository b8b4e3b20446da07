"""Configuration value objects of DiffStyleTS: model shape, sampler and training settings.

Each is a frozen attrs class built from a plain dict (a recipe table) with :func:`from_mapping`, which
names unknown keys with a suggestion. Defaults are the reference's paper configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from augframe.errors import ValidationError, require_choice, suggest

MODES = ("faithful", "improved")
STYLE_SOURCES = ("self", "reference", "prototype")
LENGTH_POLICIES = ("reject", "resample")
PRECISIONS = ("auto", "float32", "bfloat16")

T = TypeVar("T")


def _positive(_inst: Any, att: attrs.Attribute, value: Any) -> None:
    if value <= 0:
        raise ValidationError(f"{att.name}={value!r} must be positive")


@attrs.frozen
class ModelConfig:
    """Shape of the three networks. Defaults give the paper's 4,273,408 / 566,786 / 14,271,489 params.

    ``model_channels`` is the UNet base width (levels use x1, x2, x4, x8); ``norm_groups`` is the
    GroupNorm group count (32 in the reference, so widths must be multiples of it); the tiny test
    models use smaller widths and groups. ``signal_length`` is the window length the model is
    trained on (samples at ``fs`` Hz).
    """

    signal_length: int = attrs.field(default=2500, validator=_positive)
    fs: float = attrs.field(default=250.0, validator=_positive)
    in_channels: int = attrs.field(default=1, validator=_positive)
    encoder_channels: int = attrs.field(default=64, validator=_positive)
    content_dim: int = attrs.field(default=256, validator=_positive)
    style_dim: int = attrs.field(default=128, validator=_positive)
    num_classes: int = attrs.field(default=2, validator=_positive)
    model_channels: int = attrs.field(default=64, validator=_positive)
    cond_dim: int | None = None
    time_dim: int | None = None
    attention_heads: int = attrs.field(default=8, validator=_positive)
    norm_groups: int = attrs.field(default=32, validator=_positive)
    dropout: float = 0.1
    content_pool: int = attrs.field(default=8, validator=_positive)

    def __attrs_post_init__(self) -> None:
        for mult in (1, 2, 4, 8):
            if (self.model_channels * mult) % self.norm_groups:
                raise ValidationError(
                    f"model_channels={self.model_channels} x{mult} is not divisible by norm_groups="
                    f"{self.norm_groups}; pick a width that is a multiple of norm_groups"
                )
        if (self.model_channels * 8) % self.attention_heads:
            raise ValidationError(
                f"attention_heads={self.attention_heads} must divide the bottleneck width {self.model_channels * 8}"
            )
        # The reference ties both to the width: cond = 4 x model_channels, time = model_channels.
        if self.cond_dim is None:
            object.__setattr__(self, "cond_dim", 4 * self.model_channels)
        if self.time_dim is None:
            object.__setattr__(self, "time_dim", self.model_channels)
        if self.time_dim % 2 or self.time_dim <= 0 or self.cond_dim <= 0:
            raise ValidationError(
                f"time_dim={self.time_dim} must be even and positive, cond_dim={self.cond_dim} positive"
            )

    @property
    def null_class(self) -> int:
        """Index of the unconditional ('null') class embedding row."""
        return self.num_classes


#: Where a transfer's beat timing comes from: "reference" re-times the source to a real rhythm of the
#: target class (augframe.retime), "source" keeps the source's beats (the reference implementation),
#: "auto" = "reference" in improved mode, "source" in faithful mode.
RHYTHMS = ("auto", "reference", "source")
ATRIAL = ("reference", "source")


@attrs.frozen
class SamplerConfig:
    """SDEdit / DDIM settings (reference: strength 0.6, 50 steps, guidance 3, eta 0, Savitzky-Golay 11/3).

    ``rhythm``, ``atrial``, ``keep_qrs`` and ``beat_check`` are augframe's (improved mode, with
    ``rhythm = "reference"``): re-time a transfer to a target-class rhythm first; take the atrial
    activity from the same reference recording (its own samples over each T-P segment: its P waves or
    its fibrillatory waves; ``"source"`` moves the source's own T-P segments); keep the source's QRS complexes
    (RePaint-style: the QRS samples are replaced by the noised re-timed source at every step and copied
    into the result), so the diffusion model redraws the atrial activity and T waves around the
    patient's own QRS complexes; and refuse an output in which the generator's beat detector finds
    QRS-like energy where the target rhythm placed no beat (the diffusion model drew a beat).
    """

    strength: float = 0.6
    steps: int = attrs.field(default=50, validator=_positive)
    guidance: float = 3.0
    eta: float = 0.0
    clamp: float = 3.0
    savgol_window: int = 11
    savgol_order: int = 3
    smooth: bool = True
    rhythm: str = "auto"
    atrial: str = "reference"
    keep_qrs: bool = True
    beat_check: bool = True

    def __attrs_post_init__(self) -> None:
        require_choice("sampler.rhythm", self.rhythm, RHYTHMS)
        require_choice("sampler.atrial", self.atrial, ATRIAL)
        if not 0.0 < self.strength <= 1.0:
            raise ValidationError(f"strength={self.strength} must lie in (0, 1]")
        if self.eta < 0:
            raise ValidationError(f"eta={self.eta} must be >= 0 (0 = deterministic DDIM)")
        if self.smooth and (self.savgol_window % 2 == 0 or self.savgol_order >= self.savgol_window):
            raise ValidationError(
                f"savgol_window={self.savgol_window} must be odd and larger than savgol_order={self.savgol_order}"
            )


@attrs.frozen
class TrainConfig:
    """Two-stage training settings (reference: 50 + 50 epochs, batch 32, AdamW 1e-4, wd 1e-5, clip 1)."""

    stage1_epochs: int = 50
    stage2_epochs: int = 50
    batch_size: int = attrs.field(default=32, validator=_positive)
    lr: float = 1e-4
    weight_decay: float = 1e-5
    grad_clip: float = 1.0
    cfg_dropout: float = 0.1
    w_recon: float = 1.0
    w_style: float = 0.5
    w_kl: float = 0.01
    w_flip: float = 1.0
    w_sim: float = 0.3
    flip_strength: float = 0.6
    flip_steps: int = 20
    flip_guidance: float = 3.0
    judge: str = "afib-reslstm"
    judge_params: Mapping[str, Any] = attrs.field(factory=dict)
    ema_decay: float | None = None
    checkpoint_every: int = 10
    max_steps_per_epoch: int | None = None
    num_workers: int = 0
    progress: bool | None = None


def from_mapping(cls: type[T], values: Mapping[str, Any] | T | None, what: str) -> T:
    """Build ``cls`` from a mapping (recipe table); unknown keys are named with a suggestion."""
    if values is None:
        return cls()
    if isinstance(values, cls):
        return values
    if not isinstance(values, Mapping):
        raise ValidationError(f"{what} must be a table of settings, got {type(values).__name__}")
    names = [a.name for a in attrs.fields(cls)]
    for key in values:
        if key not in names:
            raise ValidationError(f"{what} has no setting {key!r}{suggest(key, names)}")
    return cls(**dict(values))


def to_dict(obj: Any) -> dict[str, Any]:
    return attrs.asdict(obj)


def check_mode(mode: str) -> str:
    return require_choice("mode", mode, MODES)
