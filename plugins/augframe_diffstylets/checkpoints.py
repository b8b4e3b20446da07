"""Reading and writing DiffStyleTS weights: our safetensors format and the reference's layout.

* Ours: one ``.safetensors`` file (``augframe.checkpoint.save_weights``) with the flattened state of
  ``content_encoder.*``, ``style_encoder.*``, ``unet.*`` plus optional ``style_bank.*`` tensors, and a
  JSON config: model settings, mode, normaliser, class names.
* The reference's ``final_model.pth`` / ``checkpoint_stage*_epoch_*.pth``: a dict with
  ``content_encoder``, ``style_encoder``, ``unet`` state dicts and ``config`` {content_dim, style_dim,
  model_channels, num_classes}. Read with ``torch.load(weights_only=True)`` only; its key names are ours,
  so it loads with no renaming (bf16-stored tensors are upcast to the model's float32).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from augframe.checkpoint import load_into, load_torch_checkpoint, load_weights, save_weights, sha256_file
from augframe.paths import resolve
from augframe.errors import CheckpointError
from augframe.judges import JudgeRef
from augframe.retime import RhythmBank
from augframe_diffstylets.config import ModelConfig, from_mapping, to_dict
from augframe_diffstylets.model import DiffStyleTS
from augframe_diffstylets.normalise import Normaliser

MODULES = ("content_encoder", "style_encoder", "unet")
BANK = "style_bank"
RHYTHM = "rhythm_bank"
FORMAT = "diffstylets-1"


@attrs.frozen(eq=False)
class Loaded:
    """A checkpoint's contents: module state dicts, model config, and what came with them."""

    model_cfg: ModelConfig
    states: dict[str, dict[str, torch.Tensor]]
    normaliser: Normaliser | None
    class_names: tuple[str, ...]
    leads: tuple[str, ...]
    units: str
    mode: str | None
    style_bank: tuple[torch.Tensor, torch.Tensor] | None
    sha256: str
    layout: str  # "augframe" or "reference"
    rhythm_bank: RhythmBank | None = None
    trained_against: tuple[JudgeRef, ...] | None = None  # None: not recorded (older checkpoints)


def save(path: str | Path, model: DiffStyleTS, *, normaliser: Normaliser, class_names: tuple[str, ...],
         leads: tuple[str, ...], mode: str, units: str = "mV",
         style_bank: tuple[torch.Tensor, torch.Tensor] | None = None, rhythm_bank: RhythmBank | None = None,
         trained_against: tuple[JudgeRef, ...] | None = None, extra: Mapping[str, Any] | None = None) -> str:
    """Write ``model`` (+ style and rhythm banks) and its config atomically; returns the file's SHA-256.

    ``trained_against`` records the judges the training optimised against (stage 2's flip loss), so
    an evaluation can tell whether its judge is independent of this generator.
    """
    state = {f"{name}.{k}": v for name in MODULES for k, v in getattr(model, name).state_dict().items()}
    if style_bank is not None:
        state[f"{BANK}.styles"] = style_bank[0].float()
        state[f"{BANK}.labels"] = style_bank[1].long()
    if rhythm_bank is not None:
        state.update({f"{RHYTHM}.{k}": torch.from_numpy(np.ascontiguousarray(v))
                      for k, v in rhythm_bank.to_arrays().items()})
    config = {
        "format": FORMAT,
        "model": to_dict(model.cfg),
        "normaliser": normaliser.to_dict(),
        "class_names": list(class_names),
        "leads": list(leads),
        "units": units,
        "mode": mode,
        **dict(extra or {}),
    }
    if trained_against is not None:
        config["trained_against"] = [j.to_dict() for j in trained_against]
    return save_weights(path, state, config)


def load(path: str | Path) -> Loaded:
    """Read either layout (by suffix: ``.safetensors`` ours, anything else the reference's .pt);
    ``pretrained:NAME`` names a shipped file (augframe.paths)."""
    path = resolve(path)
    if path.suffix == ".safetensors":
        return _load_ours(path)
    return _load_reference(path)


def _load_ours(path: Path) -> Loaded:
    flat, config = load_weights(path)
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is an augframe checkpoint but not a DiffStyleTS one "
                              f"(format {config.get('format')!r})")
    states: dict[str, dict[str, torch.Tensor]] = {n: {} for n in MODULES}
    bank: dict[str, torch.Tensor] = {}
    rhythm: dict[str, Any] = {}
    for key, value in flat.items():
        prefix, _, rest = key.partition(".")
        if prefix == BANK:
            bank[rest] = value
        elif prefix == RHYTHM:
            rhythm[rest] = value.numpy()
        elif prefix in states:
            states[prefix][rest] = value
        else:
            raise CheckpointError(f"{str(path)!r}: key {key!r} belongs to no DiffStyleTS module {MODULES}")
    missing = [k for k in ("model", "normaliser") if not isinstance(config.get(k), Mapping)]
    if missing:
        raise CheckpointError(f"{str(path)!r}: its config has no {missing} table(s); re-export the checkpoint")
    return Loaded(
        model_cfg=from_mapping(ModelConfig, config["model"], f"{path}: model config"),
        states=states,
        normaliser=Normaliser.from_dict(config["normaliser"]),
        class_names=tuple(config.get("class_names", ())),
        leads=tuple(config.get("leads", ("II",))),
        units=str(config.get("units", "mV")),
        mode=config.get("mode"),
        style_bank=(bank["styles"], bank["labels"]) if bank else None,
        sha256=sha256_file(path),
        layout="augframe",
        rhythm_bank=RhythmBank.from_arrays(rhythm) if rhythm else None,
        trained_against=_judges(config.get("trained_against"), path),
    )


def _judges(value: Any, path: Path) -> tuple[JudgeRef, ...] | None:
    if value is None:
        return None
    try:
        return tuple(JudgeRef.from_dict(v) for v in value)
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{str(path)!r}: config 'trained_against' is malformed ({exc}); "
                              "it must be a list of {classifier, identity, role}") from exc


def _load_reference(path: Path) -> Loaded:
    payload = load_torch_checkpoint(path)
    missing = [k for k in MODULES if not isinstance(payload, Mapping) or k not in payload]
    if missing:
        have = sorted(payload) if isinstance(payload, Mapping) else type(payload).__name__
        raise CheckpointError(
            f"{str(path)!r} is not a DiffStyleTS checkpoint in the reference layout: missing {missing} "
            f"(it has {have}); expected keys content_encoder, style_encoder, unet, config"
        )
    known = {"content_dim", "style_dim", "model_channels", "num_classes"}
    ref = payload.get("config", {})
    try:
        ref = dict(ref)
        bad = {k: v for k, v in ref.items() if k in known and (isinstance(v, bool) or not isinstance(v, int))}
        if bad:
            raise TypeError(f"not integers: {bad}")
        cfg = ModelConfig(**{k: v for k, v in ref.items() if k in known})
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{str(path)!r}: its config {ref!r} does not hold whole numbers for "
                              f"{sorted(known)} ({exc})") from exc
    return Loaded(
        model_cfg=cfg,
        states={k: dict(payload[k]) for k in MODULES},
        normaliser=None,
        class_names=(),
        leads=("II",),  # the reference trains on MIMIC-IV-ECG lead II
        units="normalised",  # its inputs are globally min-max scaled to [-1.5, 1.5]
        mode="faithful",
        style_bank=None,
        sha256=sha256_file(path),
        layout="reference",
    )


def load_model(loaded: Loaded, cfg: ModelConfig | None = None) -> DiffStyleTS:
    """Build the model (``cfg`` or the checkpoint's own) and load the weights; mismatches are named."""
    model = DiffStyleTS(cfg or loaded.model_cfg)
    for name in MODULES:
        load_into(getattr(model, name), loaded.states[name], what=f"DiffStyleTS {name}")
    return model
