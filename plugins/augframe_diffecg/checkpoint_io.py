"""Save and load a DiffECG model through :mod:`augframe.checkpoint` (safetensors + JSON config).

The config stored with the weights carries a ``format`` tag so a checkpoint of another plugin is
refused with a clear error; keys and shapes are checked by :func:`augframe.checkpoint.load_into`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from augframe.checkpoint import load_into, load_weights, save_weights
from augframe.errors import CheckpointError

from augframe_diffecg.config import DiffECGConfig

FORMAT = "augframe-diffecg/1"


def save(path: str | Path, model: torch.nn.Module, config: DiffECGConfig, extra: dict | None = None) -> str:
    """Write weights + config atomically; returns the file's SHA-256."""
    state = {k: v.detach().float() for k, v in model.state_dict().items()}
    return save_weights(path, state, {"format": FORMAT, "model": config.to_dict(), "extra": extra or {}})


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, DiffECGConfig, dict[str, Any]]:
    """(model in eval mode, config, extra) from a checkpoint written by :func:`save`."""
    state, meta = load_weights(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {meta.get('format')!r}, not {FORMAT!r}: not a DiffECG checkpoint")
    config = DiffECGConfig.from_dict(dict(meta["model"]))
    model = config.build()
    load_into(model, state, what=f"DiffECG model in {path}")
    return model.to(device).eval(), config, dict(meta.get("extra", {}))
