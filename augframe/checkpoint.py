"""Model weights on disk: safetensors with the JSON config inside, never an arbitrary pickle.

One ``.safetensors`` file carries the tensors and, in its metadata, the JSON config that built the
model, so a checkpoint cannot be separated from the configuration it needs. Writes are atomic.
Loading checks keys and shapes against the target modules and names every mismatch. Foreign
checkpoints written with ``torch.save`` are read with ``weights_only=True`` only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from augframe.atomic import sha256_file, write_bytes
from augframe.errors import CheckpointError
from augframe.paths import resolve

__all__ = [
    "flatten", "unflatten", "save_weights", "load_weights", "read_config", "load_torch_checkpoint",
    "state_mismatches", "load_into", "sha256_file",
]

CONFIG_KEY = "augframe_config"
FORMAT_KEY = "augframe_format"
FORMAT = "augframe-weights-1"


def flatten(modules: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """{'unet': {'w': t}} -> {'unet.w': t}: several modules' state dicts in one namespace."""
    return {f"{name}.{key}": value for name, state in modules.items() for key, value in state.items()}


def unflatten(state: Mapping[str, Any], names: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Inverse of :func:`flatten` for the given module names; unknown prefixes raise."""
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in state.items():
        prefix, _, rest = key.partition(".")
        if prefix not in out:
            raise CheckpointError(f"checkpoint key {key!r} belongs to no module of {list(names)}")
        out[prefix][rest] = value
    return out


def save_weights(path: str | os.PathLike[str], state: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """Write tensors + JSON config to ``path`` atomically; return the file's SHA-256."""
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    meta = {CONFIG_KEY: json.dumps(dict(config), sort_keys=True), FORMAT_KEY: FORMAT}
    write_bytes(path, save(tensors, metadata=meta))
    return sha256_file(path)


def load_weights(path: str | os.PathLike[str], device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """Read (state, config) from a file written by :func:`save_weights` (a path or ``pretrained:NAME``)."""
    from safetensors import safe_open

    path = resolve(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; check the path in the recipe")
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable safetensors file ({exc}); it may be truncated "
            "or another format: re-export it, or load reference .pt files with load_torch_checkpoint"
        ) from exc
    if meta.get(FORMAT_KEY) != FORMAT or CONFIG_KEY not in meta:
        raise CheckpointError(f"checkpoint {str(path)!r} has no augframe config; it was not written by save_weights")
    return state, _config(path, meta)


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON config of a checkpoint without reading its tensors."""
    from safetensors import safe_open

    path = resolve(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a readable safetensors file ({exc})") from exc
    if CONFIG_KEY not in meta:
        raise CheckpointError(f"checkpoint {str(path)!r} has no augframe config")
    return _config(path, meta)


def _config(path: str | os.PathLike[str], meta: Mapping[str, str]) -> dict[str, Any]:
    """The checkpoint's config: a JSON object, else CheckpointError (never a raw decode error)."""
    try:
        config = json.loads(meta[CONFIG_KEY])
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: its {CONFIG_KEY} metadata is not JSON ({exc}); "
                              "the file was edited or written by another tool: re-export it") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {str(path)!r}: its {CONFIG_KEY} metadata is a JSON "
                              f"{type(config).__name__}, not an object; re-export it with save_weights")
    return config


def load_torch_checkpoint(path: str | os.PathLike[str]) -> Any:
    """A ``torch.save`` file read safely (``weights_only=True``): tensors and plain containers only."""
    import torch

    path = resolve(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; check the path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} could not be read safely ({type(exc).__name__}: {exc}); "
            "only tensors and plain containers are accepted, never arbitrary pickles"
        ) from exc


def state_mismatches(expected: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two state dicts (missing, unexpected, shape)."""
    problems = [f"missing key {k!r} (shape {tuple(expected[k].shape)})" for k in expected if k not in given]
    problems += [f"unexpected key {k!r} (shape {tuple(given[k].shape)})" for k in given if k not in expected]
    problems += [
        f"key {k!r}: checkpoint shape {tuple(given[k].shape)} vs model shape {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    return problems


def load_into(module: Any, state: Mapping[str, Any], what: str = "model") -> None:
    """Load ``state`` into ``module`` exactly; every mismatched key and shape is named."""
    problems = state_mismatches(module.state_dict(), state)
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CheckpointError(
            f"{what}: the checkpoint was made for another configuration:\n  {shown}\n"
            "build the model with the checkpoint's config (or pick the matching checkpoint)"
        )
    floating = {k: (v.to(module.state_dict()[k].dtype) if v.is_floating_point() else v) for k, v in state.items()}
    module.load_state_dict(floating, strict=True)
