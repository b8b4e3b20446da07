"""Focal loss (Lin et al. 2017) with the reference's class weighting: alpha on class 1, 1 - alpha on class 0."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from augframe.errors import ValidationError


class FocalLoss(nn.Module):
    """mean(alpha_t * (1 - p_t)^gamma * CE), with p_t = exp(-CE).

    ``alpha`` is either one float (binary: weight of class 1, class 0 gets 1 - alpha, as the
    reference's alpha 0.65) or one weight per class; ``None`` leaves the classes unweighted.
    """

    def __init__(self, alpha: float | Sequence[float] | None = 0.65, gamma: float = 2.0,
                 reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValidationError(f"FocalLoss reduction={reduction!r}; use 'mean', 'sum' or 'none'")
        if gamma < 0:
            raise ValidationError(f"FocalLoss gamma={gamma} must be >= 0")
        self.gamma = float(gamma)
        self.reduction = reduction
        if alpha is None:
            self.register_buffer("alpha", None, persistent=False)
        elif isinstance(alpha, (int, float)):
            if not 0.0 <= alpha <= 1.0:
                raise ValidationError(f"FocalLoss alpha={alpha} must lie in [0, 1]")
            self.register_buffer("alpha", torch.tensor([1.0 - alpha, float(alpha)]), persistent=False)
        else:
            self.register_buffer("alpha", torch.tensor([float(a) for a in alpha]), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.alpha is not None and logits.shape[1] != len(self.alpha):
            raise ValidationError(
                f"FocalLoss has {len(self.alpha)} class weights for {logits.shape[1]} logit columns; "
                "give alpha as one weight per class"
            )
        ce = F.cross_entropy(logits, target, reduction="none")
        pt = torch.exp(-ce)
        loss = (1.0 - pt) ** self.gamma * ce
        if self.alpha is not None:
            loss = self.alpha.to(logits.device)[target] * loss
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss
