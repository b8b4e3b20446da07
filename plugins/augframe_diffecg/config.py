"""DiffECGConfig: everything needed to rebuild a trained model (stored beside its weights)."""

from __future__ import annotations

from typing import Any

import attrs

import torch

from augframe.diffusion import NoiseSchedule
from augframe.errors import CheckpointError, ValidationError

from augframe_diffecg.model import COND_MODES, DiffECGUNet
from augframe_diffecg.prior import PRIORS


def _tuple_int(v: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in v)


@attrs.frozen
class DiffECGConfig:
    """Architecture, data layout and schedule of one DiffECG model."""

    n_leads: int = 1
    leads: tuple[str, ...] = attrs.field(converter=tuple, default=("II",))
    class_names: tuple[str, ...] = attrs.field(converter=tuple, default=())
    length: int = 2500
    fs: float = 250.0
    scale: float = 1.0
    width: int = 32
    mults: tuple[int, ...] = attrs.field(converter=_tuple_int, default=(1, 2, 2, 4))
    blocks: int = 1
    cond: str = "stft"
    n_fft: int = 64
    hop: int = 16
    attention: bool = True
    dropout: float = 0.0
    diffusion_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prior: str = "none"  # absent from checkpoints written before the option existed: they load as "none"
    period: int = 0  # samples; used by prior="repeat" only

    def __attrs_post_init__(self) -> None:
        if self.cond not in COND_MODES:
            raise ValidationError(f"DiffECG cond={self.cond!r}; use one of {COND_MODES}")
        if self.prior not in PRIORS:
            raise ValidationError(f"DiffECG prior={self.prior!r}; use one of {PRIORS}")
        if self.prior == "repeat" and not 1 <= self.period < self.length:
            raise ValidationError(f"DiffECG prior='repeat' needs 1 <= period < length ({self.length}); got period="
                                  f"{self.period} (the beat period in samples, e.g. the beat length for beat pairs)")
        if len(self.leads) != self.n_leads:
            raise ValidationError(f"DiffECGConfig has {len(self.leads)} lead names for n_leads={self.n_leads}")
        if self.width < 8 or self.width % 8:
            raise ValidationError(f"DiffECG width={self.width} must be a positive multiple of 8 (GroupNorm groups)")
        if not self.mults or min(self.mults) < 1 or self.blocks < 1:
            raise ValidationError(f"DiffECG mults={self.mults} and blocks={self.blocks} must be positive (mults non-empty)")
        if not self.scale > 0:
            raise ValidationError(f"DiffECGConfig.scale={self.scale} must be positive")
        if self.hop < 1 or self.n_fft < 4 or self.hop > self.n_fft:
            raise ValidationError(f"DiffECG STFT n_fft={self.n_fft}, hop={self.hop}: need 4 <= n_fft and 1 <= hop <= n_fft")

    @property
    def n_classes(self) -> int:
        return max(1, len(self.class_names))

    def schedule(self) -> NoiseSchedule:
        """The linear DDPM schedule, its float64 alpha-bar stored in float32 (the sampler's precision)."""
        return NoiseSchedule.linear(self.diffusion_steps, self.beta_start, self.beta_end, dtype=torch.float32)

    def build(self) -> DiffECGUNet:
        return DiffECGUNet(self.n_leads, self.n_classes, self.width, self.mults, self.blocks, self.cond,
                           self.n_fft, self.hop, self.attention, self.dropout, self.prior, self.period)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, value_serializer=lambda _i, _f, v: list(v) if isinstance(v, tuple) else v)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiffECGConfig:
        known = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CheckpointError(f"DiffECG config has unknown keys {unknown}; was it written by another version?")
        return cls(**d)
