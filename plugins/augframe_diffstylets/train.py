"""Two-stage DiffStyleTS training with exact resume.

Stage 1 (both modes): L = w_recon MSE(eps_hat, eps) + w_style CE(style logits, y) + w_kl KL, the UNet
conditioned on the true label with classifier-free dropout to the null class (per batch in
``faithful`` mode, as the reference; per sample in ``improved`` mode).

Stage 2:
  * ``faithful``: the reference's stage 2. The optimised loss is the eps-MSE alone; a no-grad
    SDEdit (strength 0.6, 20 steps, CFG 3) of each batch towards the other class gives the flip loss
    (judge CE) and the similarity MSE that the reference logs but cannot train with.
  * ``improved``: losses that train. From x_t at the SDEdit noise level, a guided one-step x0
    estimate towards the other class is fed (with gradients) through a frozen, eval-mode judge
    classifier: L = stage-1 terms + w_flip CE(judge(x0_hat), y') + w_sim MSE(x0_hat, x).

Both stages run through :func:`augframe_diffstylets.stages.train_stage`, i.e. the core's
``train_steps`` loop (AdamW, global grad-norm clipping, optional EMA, bf16 autocast on CUDA, progress
bars on terminals) on one process: the same loss, order and seeds on any number of ranks. Each stage
keeps a resumable training state (modules, optimiser, EMA, RNG states, counters) written every
``checkpoint_every`` epochs and at the end, and one JSON-lines log record per epoch. The epoch order
depends only on (seed, epoch), so a run resumed from its state files ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from augframe.distributed import DistContext, TrainProgress
from augframe.errors import ValidationError
from augframe.training import TrainLog
from augframe_diffstylets.config import ModelConfig, TrainConfig, to_dict
from augframe_diffstylets.model import DiffStyleTS
from augframe_diffstylets.normalise import Normaliser
from augframe_diffstylets.stages import epoch_steps, other_class, train_stage

STATE_FILE = "train_state.pt"
STAGE2_STATE_FILE = "train_state_stage2.pt"
LOG_FILE = "train_log.jsonl"
NOT_METRICS = frozenset({"stage", "epoch", "step", "global_step", "seconds", "samples_per_s"})
#: Settings a resume may change (how long and how fast to run); the others must match the state's.
RUN_LENGTH = ("stage1_epochs", "stage2_epochs", "checkpoint_every", "max_steps_per_epoch", "num_workers", "progress")

__all__ = ["LOG_FILE", "STAGE2_STATE_FILE", "STATE_FILE", "Trainer", "model_config", "other_class", "stage2_judge"]


def model_config(cfg: ModelConfig, data: Any) -> ModelConfig:
    """``cfg`` set to the training windows' length, fs and class count (their lead count must match)."""
    if len(data.leads) != cfg.in_channels:
        raise ValidationError(
            f"training data has {len(data.leads)} leads {tuple(data.leads)} but the model takes "
            f"in_channels={cfg.in_channels}; select leads first or set model.in_channels"
        )
    length = int(np.asarray(data[0][0]).shape[-1])
    return attrs.evolve(cfg, signal_length=length, fs=float(data.fs), num_classes=max(2, len(data.class_names)))


def stage2_judge(cfg: TrainConfig, class_names: tuple[str, ...], registry: Any, device: Any
                 ) -> tuple[Any, torch.Tensor | None]:
    """The frozen eval-mode judge of stage 2's flip loss and its row of each class, or (None, None) when
    stage 2 has no flip loss. ``registry`` is where ``cfg.judge`` is looked up (default: discovered)."""
    if cfg.stage2_epochs == 0 or not cfg.judge or cfg.w_flip == 0:
        return None, None
    from augframe.plugins import Registry

    registry = registry if registry is not None else Registry.discover()
    judge = registry.create("classifier", cfg.judge, dict(cfg.judge_params)).to(device).eval()
    for p in judge.parameters():
        p.requires_grad_(False)
    names = tuple(getattr(judge, "class_names", ()))
    missing = [c for c in class_names if c not in names]
    if missing:
        raise ValidationError(
            f"judge classifier {cfg.judge!r} has classes {names}; it cannot score {missing}; "
            "pick a judge trained on the same classes (train.judge)"
        )
    return judge, torch.tensor([names.index(c) for c in class_names], device=device)


class Trainer:
    """Runs both stages over a WindowDataset; ``run`` resumes from ``workdir`` when a state exists."""

    def __init__(self, model: DiffStyleTS, data: Any, *, mode: str, cfg: TrainConfig, normaliser: Normaliser,
                 device: str = "cpu", seed: int = 0, workdir: str | Path | None = None, judge: Any = None,
                 judge_index: torch.Tensor | None = None, precision: str = "auto") -> None:
        self.model, self.data, self.mode, self.cfg = model.to(device), data, mode, cfg
        self.normaliser, self.device, self.seed = normaliser, device, seed
        self.workdir = Path(workdir) if workdir is not None else None
        self.judge, self.judge_index, self.precision = judge, judge_index, precision
        self.opt: Any = None
        self.ema: Any = None
        self.epoch = 0
        self.log = TrainLog(self.workdir / LOG_FILE if self.workdir else None)
        self._done: dict[int, TrainProgress] = {}
        labels = np.asarray(data.labels)
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= model.cfg.num_classes:
            raise ValidationError(
                f"training labels must be class indices 0..{model.cfg.num_classes - 1} "
                f"(classes {tuple(data.class_names)}); drop unlabelled windows first"
            )

    @property
    def total_epochs(self) -> int:
        return self.cfg.stage1_epochs + self.cfg.stage2_epochs

    def state_path(self, stage: int) -> Path | None:
        return self.workdir / (STATE_FILE if stage == 1 else STAGE2_STATE_FILE) if self.workdir else None

    @property
    def history(self) -> dict[str, list[float]]:
        """Per-epoch means from the log: ``stage{1,2}_{metric}`` (also across a resume, with a workdir)."""
        path = self.workdir / LOG_FILE if self.workdir else None
        records = TrainLog.read(path) if path is not None and path.is_file() else self.log.records
        out: dict[str, list[float]] = defaultdict(list)
        for r in records:
            for k, v in r.items():
                if k not in NOT_METRICS:
                    out[f"stage{r['stage']}_{k}"].append(v)
        return dict(out)

    def run(self, stop_after_epoch: int | None = None) -> dict[str, list[float]]:
        """Train to the end (or up to ``stop_after_epoch`` epochs done), resuming if a state exists."""
        if len(self.data) < self.cfg.batch_size:
            raise ValidationError(
                f"{len(self.data)} training windows make no batch of batch_size={self.cfg.batch_size}"
            )
        if not self._done and not any(p is not None and p.is_file() for p in map(self.state_path, (1, 2))):
            torch.manual_seed(self.seed)
        end = self.total_epochs if stop_after_epoch is None else min(stop_after_epoch, self.total_epochs)
        per_epoch = epoch_steps(len(self.data), self.cfg)
        train = {k: v for k, v in to_dict(self.cfg).items() if k not in RUN_LENGTH}
        config = {"train": train, "mode": self.mode, "seed": self.seed}
        for stage, first, n in ((1, 0, self.cfg.stage1_epochs), (2, self.cfg.stage1_epochs, self.cfg.stage2_epochs)):
            if n == 0 or end <= first:
                continue
            progress, self.opt, self.ema = train_stage(
                DistContext(device=str(self.device)), self.model, self.data, stage=stage, mode=self.mode,
                cfg=self.cfg, normaliser=self.normaliser, seed=self.seed, epochs=n,
                max_steps=min(end - first, n) * per_epoch, judge=self.judge if stage == 2 else None,
                judge_index=self.judge_index, state_path=self.state_path(stage), log=self.log, config=config,
                optimizer=self.opt, ema=self.ema, precision=self.precision, start=self._done.get(stage))
            self._done[stage] = progress
            self.epoch = first + progress.epoch
        return self.history
