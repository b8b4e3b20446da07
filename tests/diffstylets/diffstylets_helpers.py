"""Shared pieces of the DiffStyleTS tests: tiny widths, fixture upcasting, a tiny judge classifier."""

from __future__ import annotations

import torch

import augframe

# A width small enough to train on the CPU in seconds (GroupNorm groups shrink with it).
TINY = dict(encoder_channels=8, content_dim=16, style_dim=8, model_channels=8, norm_groups=4,
            attention_heads=2, content_pool=4)
CROP = 256  # samples per window in the training tests (about 1 s at 250 Hz)


def float_state(d: dict) -> dict:
    """The fixtures store weights as bf16: upcast floating tensors to the float32 the reference ran with."""
    return {k: (v.float() if v.is_floating_point() else v) for k, v in d["state_dict"].items()}


class TinyJudge(torch.nn.Module):
    """A small conv classifier standing in for the AFib judge in tests (z-scores its input)."""

    class_names = ("N", "A")

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv = torch.nn.Conv1d(1, 4, 9, stride=4)
        self.head = torch.nn.Linear(4, 2)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-8)
        return torch.relu(self.conv(x)).mean(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class _JudgePlugin:
    @staticmethod
    @augframe.hookimpl
    def augframe_register_classifiers(register):
        register("tiny-judge", TinyJudge)
