"""Train one classifier (balanced batches, warm-up + cosine, early stopping on validation AUROC) and predict.

The steps run in the core loop, ``augframe.distributed.train_steps``, on the data held as tensors
on the training device (batches drawn by index: no per-sample Python work); validation, model
selection and early stopping are its epoch hook. The training length is a budget of optimiser steps, the same for
every training set of a comparison; an "epoch" is the stretch between two validation checks (one
pass over the training set unless capped). Batch order comes from ``augframe.training.EpochSampler``
(class-balanced, seeded by run seed and epoch), the learning rate follows
``augframe.training.warmup_cosine`` per step, validation and the kept weights use an exponential
moving average of the weights (``augframe.training.EMA``), and dropout draws from a forked, seeded
torch RNG, so a run is replayable and does not disturb the caller's global RNG. bf16 autocast on CUDA.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn import functional as F

from augframe.distributed import DistContext, StepBatch, TensorData, TrainPlan, TrainProgress, train_steps
from augframe.errors import ValidationError, require_choice
from augframe.training import EMA, EpochSampler, autocast, warmup_cosine

from augframe_afib.focal import FocalLoss

#: ``augment(x, y, seed) -> x``: a per-batch transform of training signals (condition D).
Augment = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]

BALANCE = ("sampler", "loss", "none")
MONITORS = ("auroc", "balanced_loss", "loss")
LR_SCHEDULES = ("cosine", "constant")


@attrs.frozen
class TrainSettings:
    """Budget, optimiser, class balance and stopping rule of one classifier run.

    The defaults are the robust recipe (see docs/afib-evaluator.md, "Training settings"):
    class-balanced batches with plain cross-entropy, Adam with 5 % linear warm-up then cosine
    decay per step over ``max_steps``, an EMA of the weights (``ema_decay``; None = off) that is
    what gets validated and kept, early stopping on validation AUROC (ties: lower balanced loss)
    with the best weights kept. :meth:`reference` gives the DiffStyleTS reference's loop.

    Budget: ``max_steps`` optimiser steps and/or ``max_epochs`` epochs, whichever ends first (at
    least one must be set); an epoch is one pass over the training set, or ``max_steps_per_epoch``
    steps when that is smaller. ``patience`` counts epochs without improvement.
    """

    max_steps: int | None = 2000
    max_epochs: int | None = None
    max_steps_per_epoch: int | None = None
    patience: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    warmup_fraction: float = 0.05
    lr_schedule: str = "cosine"
    balance: str = "sampler"
    monitor: str = "auroc"
    focal_alpha: float | None = None
    focal_gamma: float = 0.0
    ema_decay: float | None = 0.99
    eval_batch_size: int = 256

    def __attrs_post_init__(self) -> None:
        for name in ("patience", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValidationError(f"TrainSettings.{name}={getattr(self, name)} must be >= 1")
        for name in ("max_steps", "max_epochs", "max_steps_per_epoch"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValidationError(f"TrainSettings.{name}={getattr(self, name)} must be >= 1 (or None)")
        if self.max_steps is None and self.max_epochs is None:
            raise ValidationError("TrainSettings needs a budget: set max_steps or max_epochs")
        if self.lr <= 0:
            raise ValidationError(f"TrainSettings.lr={self.lr} must be positive")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValidationError(f"TrainSettings.warmup_fraction={self.warmup_fraction} must lie in [0, 1)")
        require_choice("TrainSettings.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        require_choice("TrainSettings.balance", self.balance, BALANCE)
        require_choice("TrainSettings.monitor", self.monitor, MONITORS)
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValidationError(f"TrainSettings.ema_decay={self.ema_decay} must lie in (0, 1) (or None: no EMA)")
        if self.balance == "loss" and self.focal_alpha is not None:
            raise ValidationError("TrainSettings: balance='loss' sets the class weights itself; leave focal_alpha None")

    @classmethod
    def reference(cls, max_epochs: int = 40, **changes: Any) -> TrainSettings:
        """The reference's loop: focal loss (alpha 0.65, gamma 2) on unbalanced batches, constant lr
        1e-3, early stopping on that loss over the validation set, a budget in epochs."""
        base = dict(max_steps=None, max_epochs=max_epochs, lr=1e-3, warmup_fraction=0.0, lr_schedule="constant",
                    balance="none", monitor="loss", focal_alpha=0.65, focal_gamma=2.0, ema_decay=None)
        return cls(**{**base, **changes})

    def describe(self) -> str:
        """One line for a report's scale statement."""
        budget = " and ".join(x for x in (self.max_steps and f"{self.max_steps} steps",
                                          self.max_epochs and f"{self.max_epochs} epochs") if x)
        batches = {"sampler": "class-balanced batches", "loss": "class-weighted loss", "none": "unbalanced batches"}
        lr = f"warm-up + cosine lr {self.lr:g}" if self.lr_schedule == "cosine" else f"constant lr {self.lr:g}"
        ema = f", weight EMA {self.ema_decay:g}" if self.ema_decay else ""
        return (f"at most {budget} of batch {self.batch_size} ({batches[self.balance]}, {lr}{ema}), early stopping on "
                f"validation {self.monitor.replace('_', ' ')} (patience {self.patience} epochs)")

    def plan(self, steps_per_pass: int) -> tuple[int, int]:
        """(steps per epoch, total steps) for a training set of ``steps_per_pass`` batches."""
        epoch = max(1, min(steps_per_pass, self.max_steps_per_epoch or steps_per_pass))
        total = min(self.max_steps or math.inf, (self.max_epochs or math.inf) * epoch)
        return epoch, int(total)

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based) of a ``total``-step run."""
        if self.lr_schedule == "constant":
            return self.lr
        return self.lr * warmup_cosine(step, total, int(round(self.warmup_fraction * total)))


@attrs.frozen(eq=False)
class FitResult:
    """The best-validation weights and the run's history."""

    state: dict[str, torch.Tensor]
    best_epoch: int
    epochs_run: int
    best_val_loss: float
    stopped_early: bool
    history: tuple[dict[str, float], ...]
    samples_seen: int = 0
    best_val_auroc: float = float("nan")
    steps: int = 0
    planned_steps: int = 0

    @property
    def hit_cap(self) -> bool:
        """True when the budget ran out while the validation score was still improving."""
        return not self.stopped_early and self.best_epoch == self.epochs_run


def class_weights(y: np.ndarray, num_classes: int) -> list[float]:
    """Inverse-frequency weights n / (K n_c) (1 for an absent class): each class weighs the same in total."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=num_classes).astype(float)
    return [len(y) / (num_classes * c) if c else 1.0 for c in counts]


def make_loss(settings: TrainSettings, num_classes: int, y_train: np.ndarray | None = None) -> nn.Module:
    """Focal loss (gamma 0 = cross-entropy); class weights from ``focal_alpha`` or, with
    ``balance='loss'``, inverse class frequencies of ``y_train``."""
    if settings.balance == "loss":
        if y_train is None:
            raise ValidationError("make_loss: balance='loss' needs the training labels")
        return FocalLoss(alpha=class_weights(y_train, num_classes), gamma=settings.focal_gamma)
    alpha = settings.focal_alpha if num_classes == 2 else None
    return FocalLoss(alpha=alpha, gamma=settings.focal_gamma)


def _tensor(x: np.ndarray | torch.Tensor, device: str, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(x) if not torch.is_tensor(x) else x
    return t.to(device=device, dtype=dtype)


def _score(row: dict[str, float], monitor: str) -> tuple[float, float]:
    """Larger is better (NaN counts as worst); AUROC ties (common once it saturates) go to the lower
    balanced loss."""
    pair = (row["val_auroc"], -row["val_balanced_loss"]) if monitor == "auroc" else (-row[f"val_{monitor}"], 0.0)
    return tuple(-math.inf if math.isnan(v) else v for v in pair)  # type: ignore[return-value]


@attrs.define(eq=False)
class _Selection:
    """The epoch hook of a fit: validate the held weights, keep the best, stop after ``patience``
    epochs without improvement. Its state rides in the training state, so a resumed run continues it."""

    settings: TrainSettings
    held: nn.Module  # the weights that are validated and kept (the EMA's copy, or the model)
    ema: EMA | None
    val: TensorData
    loss_fn: nn.Module
    total: int
    device: str
    seen: int = 0
    best_epoch: int = 0
    bad: int = 0
    stopped: bool = False
    best: tuple[float, float] = (-math.inf, -math.inf)
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = attrs.field(factory=list)
    _samples: int = 0  # samples of this call of train_steps at the last epoch end

    def __call__(self, progress: TrainProgress) -> bool:
        if self.ema is not None:
            self.ema.copy_to(self.held)
        row = {"epoch": len(self.history) + 1, "step": progress.global_step,
               "lr": self.settings.lr_at(progress.global_step - 1, self.total),
               "train_loss": progress.last_metrics["loss"],
               **validate(self.held, self.val.x, self.val.y, self.loss_fn, self.settings.eval_batch_size, self.device)}
        self.seen, self._samples = self.seen + progress.samples - self._samples, progress.samples
        self.history.append(row)
        score = _score(row, self.settings.monitor)
        if self.best_state is None or score > self.best:
            self.best, self.best_epoch, self.bad = score, len(self.history), 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.held.state_dict().items()}
        else:
            self.bad += 1
            self.stopped = self.bad >= self.settings.patience
        return self.stopped

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _SAVED}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in _SAVED:
            setattr(self, k, state[k])


_SAVED = ("seen", "best_epoch", "bad", "stopped", "best", "best_state", "history")  # what a resume restores


def fit_classifier(
    model: nn.Module, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
    settings: TrainSettings, *, seed: int, device: str = "cpu", augment: Augment | None = None,
    show_progress: bool = False, desc: str = "", state_path: str | Path | None = None,
) -> FitResult:
    """Adam, per-step lr schedule, gradient clipping, weight EMA, early stopping on ``settings.monitor``;
    leaves the best validated weights in ``model`` and returns them.

    The steps run in the core loop (:func:`augframe.distributed.train_steps`) on the data held as
    tensors on ``device``; validation and early stopping are its epoch hook. With ``state_path``,
    the full training state (weights, optimiser, EMA, RNG, counters, best weights, history) is
    written there atomically after every epoch, and a run that finds it continues from the next
    epoch; the result equals an uninterrupted run. The file is removed at the end.
    """
    if len(x_train) < 1 or len(x_val) < 1:
        raise ValidationError(f"fit_classifier {desc}: empty training ({len(x_train)}) or validation ({len(x_val)}) set")
    y_train, y_val = np.asarray(y_train, dtype=np.int64), np.asarray(y_val, dtype=np.int64)
    num_classes = len(getattr(model, "class_names", ())) or int(max(y_train.max(), y_val.max())) + 1
    model = model.to(device)
    train = TensorData(_tensor(x_train, device, torch.float32), _tensor(y_train, device, torch.long))
    val = TensorData(_tensor(x_val, device, torch.float32), _tensor(y_val, device, torch.long))
    loss_fn = make_loss(settings, num_classes, y_train).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    # the average starts short (1/10, 2/11, ...) so early weights do not linger
    ema = EMA(model, settings.ema_decay, warmup=True) if settings.ema_decay else None
    batch = min(settings.batch_size, len(train))
    drop_last = len(train) >= 2 * batch
    epoch_steps, total = settings.plan(EpochSampler(len(train), batch, drop_last=drop_last).steps_per_epoch())
    # an epoch's metrics are logged at its end: the hook gets the epoch's mean training loss. Epochs
    # count from 1 (``first``), so epoch e's batch order is the one fits drew before they ran in the
    # core loop: earlier runs (the shipped judge, docs/results) replay bit for bit.
    first = TrainProgress(epoch=1, step=0, global_step=0, samples=0, seconds=0.0)
    plan = TrainPlan(global_batch=batch, seed=seed, epochs=1 + -(-total // epoch_steps), max_steps=total,
                     max_steps_per_epoch=epoch_steps, grad_clip=settings.grad_clip or None,
                     checkpoint_every=epoch_steps, log_every=epoch_steps, drop_last=drop_last, autocast=False,
                     progress=show_progress, desc=desc)
    selection = _Selection(settings, copy.deepcopy(model) if ema else model, ema, val, loss_fn, total, device)

    def step_loss(m: nn.Module, b: StepBatch) -> tuple[torch.Tensor, dict[str, Any]]:
        x = b.x if augment is None else augment(b.x, b.y, seed * 1_000_003 + b.global_step)
        with autocast(device):
            logits = m(x)
        return loss_fn(logits.float(), b.y), {}

    fork_devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):  # dropout draws from a seeded RNG of its own
        torch.manual_seed(seed)
        done = train_steps(DistContext(device=device), model, opt, train, step_loss, plan, ema=ema,
                           state_path=state_path, config={**attrs.asdict(settings), "seed": seed},
                           lr_at=lambda step: settings.lr_at(step, total), on_epoch=selection, start=first,
                           labels=y_train if settings.balance == "sampler" else None)
    assert selection.best_state is not None
    model.load_state_dict(selection.best_state)
    if state_path is not None:
        Path(state_path).unlink(missing_ok=True)
    at_best = selection.history[selection.best_epoch - 1]
    return FitResult(selection.best_state, selection.best_epoch, len(selection.history), at_best["val_loss"],
                     selection.stopped, tuple(selection.history), selection.seen, at_best["val_auroc"],
                     done.global_step, total)


@torch.no_grad()
def _forward(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray | torch.Tensor, device: str,
             batch_size: int) -> torch.Tensor:
    """``fn`` over ``x`` in batches (each moved to ``device`` as float32) under autocast; float32 outputs
    concatenated on the device."""
    out = []
    for i in range(0, len(x), batch_size):
        with autocast(device):
            out.append(fn(_tensor(x[i:i + batch_size], device, torch.float32)).float())
    return torch.cat(out)


@torch.no_grad()
def validate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module, batch_size: int,
             device: str) -> dict[str, float]:
    """Validation ``val_loss`` (the training loss), ``val_balanced_loss`` (cross-entropy averaged per
    class, then over classes) and ``val_auroc`` (positive = class 1; one-vs-rest macro for more classes)."""
    z = _forward(model.eval(), x, device, batch_size)
    ce = F.cross_entropy(z, y, reduction="none")
    per_class = [ce[y == c].mean() for c in torch.unique(y)]
    proba = torch.softmax(z, dim=1).double().cpu().numpy()
    labels = y.cpu().numpy()
    if len(np.unique(labels)) < 2:
        auroc = float("nan")
    elif proba.shape[1] == 2:
        auroc = float(roc_auc_score(labels, proba[:, 1]))
    else:
        auroc = float(roc_auc_score(labels, proba, multi_class="ovr", labels=np.arange(proba.shape[1])))
    return {"val_loss": float(loss_fn(z, y)), "val_balanced_loss": float(torch.stack(per_class).mean()),
            "val_auroc": auroc}


def predict_proba(model: nn.Module, x: np.ndarray | torch.Tensor, *, device: str = "cpu",
                  batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities ``[N, classes]`` in eval mode (float64 numpy)."""
    model = model.to(device).eval()
    if len(x) == 0:
        return np.zeros((0, len(getattr(model, "class_names", (0, 0)))))
    return torch.softmax(_forward(model, x, device, batch_size), dim=1).cpu().double().numpy()


def embed(model: nn.Module, x: np.ndarray | torch.Tensor, *, device: str = "cpu", batch_size: int = 256) -> np.ndarray:
    """``model.embed`` features ``[N, D]`` in eval mode (float64 numpy)."""
    model = model.to(device).eval()
    return _forward(model.embed, x, device, batch_size).cpu().double().numpy()
