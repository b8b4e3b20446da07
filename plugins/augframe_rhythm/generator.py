"""RhythmTransplantGenerator: transfer by re-timing alone (the baseline for learned generators)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

import augframe
from augframe.checkpoint import load_weights, save_weights
from augframe.errors import CheckpointError, PluginError, ValidationError, require_choice
from augframe.protocols import Candidates, GenerationRequest, GeneratorInfo
from augframe.retime import TOO_FEW_BEATS, RetimeConfig, RhythmBank, retime, source_beats
from augframe.signals import ECGBatch

NAME = "rhythm-transplant"
CHECKPOINT_FILE = "rhythm-transplant.safetensors"


def class_map(request_names: tuple[str, ...], bank_names: tuple[str, ...], labels: np.ndarray) -> np.ndarray:
    """Request label indices -> the bank's class indices (by class name when both name their classes)."""
    labels = np.asarray(labels, dtype=np.int64)
    if not request_names or not bank_names or tuple(request_names) == tuple(bank_names):
        return labels
    missing = sorted({request_names[j] for j in labels} - set(bank_names))
    if missing:
        raise ValidationError(f"requested classes {missing} have no rhythm in the bank (classes {bank_names})")
    return np.array([bank_names.index(request_names[j]) for j in labels], dtype=np.int64)


class RhythmTransplantGenerator:
    """Transfer a source ECG to a target class by giving it a real target-class rhythm.

    ``fit(train)`` stores the R-peak times of up to ``per_class`` training windows per class (no
    learning) and the windows themselves; ``generate`` draws one of them per sample by seed and re-times
    the source to it, with the atrial activity of that recording (``atrial="reference"``: its own samples
    over each T-P segment, P waves or fibrillatory waves) or the source's own (``"source"``).
    """

    def __init__(self, checkpoint: str | None = None, per_class: int = 256, pre_s: float = 0.06,
                 post_s: float = 0.06, max_st_s: float = 0.40, atrial: str = "reference") -> None:
        if per_class < 1:
            raise ValidationError(f"rhythm-transplant per_class={per_class} must be >= 1")
        require_choice("rhythm-transplant atrial", atrial, ("reference", "source"))
        self.per_class = int(per_class)
        self.atrial = atrial
        self.config = RetimeConfig(pre_s=pre_s, post_s=post_s, max_st_s=max_st_s)
        self.bank: RhythmBank | None = None
        self.class_names: tuple[str, ...] = ()
        self.checkpoint_sha256: str | None = None
        if checkpoint is not None:
            self.load(checkpoint)

    @property
    def info(self) -> GeneratorInfo:
        params = {"per_class": self.per_class, "retime": attrs.asdict(self.config), "atrial": self.atrial,
                  "class_names": list(self.class_names)}
        return GeneratorInfo(NAME, augframe.__version__, self.checkpoint_sha256, params, trained_against=())

    @property
    def request_kinds(self) -> frozenset[str]:
        return frozenset({"transfer"})

    def fit(self, train: Any, *, seed: int = 0, workdir: Path | None = None) -> dict[str, Any]:
        """Collect target rhythms from the training windows (the generator's only "training")."""
        self.bank = RhythmBank.from_windows(train, per_class=self.per_class, seed=seed)
        self.class_names = tuple(getattr(train, "class_names", ()) or ())
        out: dict[str, Any] = {"rhythms": int(len(self.bank)),
                               "per_class": {c: int((self.bank.labels == i).sum()) for i, c in enumerate(self.class_names)}}
        if workdir is not None:
            out["checkpoint"] = str(Path(workdir) / CHECKPOINT_FILE)
            out["sha256"] = self.save(Path(workdir) / CHECKPOINT_FILE)
        return out

    def save(self, path: str | Path) -> str:
        bank = self._need_bank()
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bank.to_arrays().items()}
        self.checkpoint_sha256 = save_weights(path, state, {"generator": NAME, "class_names": list(self.class_names),
                                                            "retime": attrs.asdict(self.config)})
        return self.checkpoint_sha256

    def load(self, path: str | Path) -> None:
        state, config = load_weights(path)
        if config.get("generator") != NAME:
            raise CheckpointError(f"{str(path)!r} is not a rhythm-transplant checkpoint (generator "
                                  f"{config.get('generator')!r})")
        self.bank = RhythmBank.from_arrays({k: v.numpy() for k, v in state.items()})
        self.class_names = tuple(config.get("class_names", ()))
        from augframe.checkpoint import sha256_file

        self.checkpoint_sha256 = sha256_file(path)

    def _need_bank(self) -> RhythmBank:
        if self.bank is None:
            raise PluginError("rhythm-transplant has no rhythms yet: call fit(train) or pass checkpoint=PATH")
        return self.bank

    def generate(self, request: GenerationRequest) -> Candidates:
        bank = self._need_bank()
        if request.kind != "transfer":
            raise ValidationError(f"rhythm-transplant serves 'transfer' requests, not {request.kind!r}")
        src = request.sources.to_numpy()
        x = src.numpy()
        if not np.isfinite(x).all():
            raise ValidationError("rhythm-transplant: a source contains NaN or Inf; clean it before generating")
        labels = class_map(tuple(request.class_names), self.class_names, request.labels)
        targets = bank.draw(labels, request.seeds, src.fs, src.n_samples)
        peaks, refused = source_beats(x, src.fs)
        atrial = bank.draw_atrial(labels, request.seeds, src.fs, src.n_samples) if self.atrial == "reference" else None
        out, done = retime(x, peaks, targets, src.fs, self.config, atrial=atrial)
        refused = tuple(why or ("" if ok else TOO_FEW_BEATS) for why, ok in zip(refused, done))
        names = tuple(request.class_names) or self.class_names
        batch = ECGBatch(out, src.fs, src.leads, labels=np.asarray(request.labels, dtype=np.int64), class_names=names,
                         ids=[f"{NAME}:{i}:{s}" for i, s in zip(src.ids, request.seeds)], units=src.units)
        return Candidates(batch, request.seeds, self.info, source_ids=src.ids, refused=refused)
