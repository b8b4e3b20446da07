"""Train one classifier (balanced batches, warm-up + cosine, early stopping on validation AUROC) and predict.

The loop keeps the data as tensors on the training device and draws batches by index, so a run
has no per-sample Python work. The training length is a budget of optimiser steps, the same for
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

from augframe.errors import ValidationError, require_choice
from augframe.training import EMA, EpochSampler, autocast, load_train_state, progress, save_train_state, warmup_cosine

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


@attrs.define
class _Progress:
    """Counters, history and best-so-far of a run: what a resumed run restores."""

    step: int = 0
    seen: int = 0
    epoch: int = 0
    best_epoch: int = 0
    bad: int = 0
    stopped: bool = False
    best: tuple[float, float] = (-math.inf, -math.inf)
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = attrs.field(factory=list)

    def observe(self, row: dict[str, float], settings: TrainSettings, weights: nn.Module) -> None:
        """Log an epoch's validation row; keep ``weights`` if they score best, else count towards patience."""
        self.history.append(row)
        self.epoch = int(row["epoch"])
        score = _score(row, settings.monitor)
        if self.best_state is None or score > self.best:
            self.best, self.best_epoch, self.bad = score, self.epoch, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in weights.state_dict().items()}
        else:
            self.bad += 1
            self.stopped = self.bad >= settings.patience

    def saved(self) -> tuple[dict[str, int], dict[str, Any]]:
        counters = {"epoch": self.epoch, "best_epoch": self.best_epoch, "bad": self.bad, "seen": self.seen,
                    "step": self.step, "stopped": int(self.stopped)}
        return counters, {"best": list(self.best), "history": self.history, "best_state": self.best_state}

    @classmethod
    def restored(cls, counters: dict[str, int], extra: dict[str, Any]) -> _Progress:
        return cls(step=counters["step"], seen=counters["seen"], epoch=counters["epoch"],
                   best_epoch=counters["best_epoch"], bad=counters["bad"], stopped=bool(counters["stopped"]),
                   best=tuple(extra["best"]), best_state=dict(extra["best_state"]), history=list(extra["history"]))


def fit_classifier(
    model: nn.Module, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
    settings: TrainSettings, *, seed: int, device: str = "cpu", augment: Augment | None = None,
    show_progress: bool = False, desc: str = "", state_path: str | Path | None = None,
) -> FitResult:
    """Adam, per-step lr schedule, gradient clipping, weight EMA, early stopping on ``settings.monitor``;
    leaves the best validated weights in ``model`` and returns them.

    With ``state_path``, the full training state (weights, optimiser, EMA, RNG, counters, best
    weights, history) is written there atomically after every epoch, and a run that finds it
    continues from the next epoch; the result equals an uninterrupted run. The file is removed at the end.
    """
    if len(x_train) < 1 or len(x_val) < 1:
        raise ValidationError(f"fit_classifier {desc}: empty training ({len(x_train)}) or validation ({len(x_val)}) set")
    y_train, y_val = np.asarray(y_train, dtype=np.int64), np.asarray(y_val, dtype=np.int64)
    num_classes = len(getattr(model, "class_names", ())) or int(max(y_train.max(), y_val.max())) + 1
    model = model.to(device)
    xt, yt = _tensor(x_train, device, torch.float32), _tensor(y_train, device, torch.long)
    xv, yv = _tensor(x_val, device, torch.float32), _tensor(y_val, device, torch.long)
    loss_fn = make_loss(settings, num_classes, y_train).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    # the average starts short (1/10, 2/11, ...) so early weights do not linger
    ema = EMA(model, settings.ema_decay, warmup=True) if settings.ema_decay else None
    held = copy.deepcopy(model) if ema else model  # the weights that are validated and kept
    batch = min(settings.batch_size, len(xt))
    sampler = EpochSampler(len(xt), batch, seed=seed, shuffle=True, drop_last=len(xt) >= 2 * batch,
                           labels=y_train if settings.balance == "sampler" else None)
    epoch_steps, total = settings.plan(sampler.steps_per_epoch())
    prog = _Progress()
    fork_devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        if state_path is not None and Path(state_path).is_file():
            got = load_train_state(state_path, modules={"model": model}, optimizers={"opt": opt},
                                   ema={"ema": ema} if ema else {})
            prog = _Progress.restored(got["counters"], got["extra"])
        for epoch in range(prog.epoch + 1, -(-total // epoch_steps) + 1):
            if prog.stopped:
                break
            sampler.set_epoch(epoch)
            batches = list(sampler)[: min(epoch_steps, total - prog.step)]
            shown = progress(batches, desc=f"{desc} epoch {epoch}", enabled=show_progress)
            train_loss = _train_epoch(model, opt, ema, loss_fn, xt, yt, shown, settings, total, prog, augment, seed,
                                      device)
            if ema is not None:
                ema.copy_to(held)
            row = {"epoch": epoch, "step": prog.step, "lr": settings.lr_at(prog.step - 1, total),
                   "train_loss": train_loss, **validate(held, xv, yv, loss_fn, settings.eval_batch_size, device)}
            prog.observe(row, settings, held)
            if state_path is not None:
                counters, extra = prog.saved()
                save_train_state(state_path, modules={"model": model}, optimizers={"opt": opt},
                                 ema={"ema": ema} if ema else {}, counters=counters, extra=extra)
    assert prog.best_state is not None
    model.load_state_dict(prog.best_state)
    if state_path is not None:
        Path(state_path).unlink(missing_ok=True)
    at_best = prog.history[prog.best_epoch - 1]
    return FitResult(prog.best_state, prog.best_epoch, len(prog.history), at_best["val_loss"], prog.stopped,
                     tuple(prog.history), prog.seen, at_best["val_auroc"], prog.step, total)


def _train_epoch(model: nn.Module, opt: torch.optim.Optimizer, ema: EMA | None, loss_fn: nn.Module,
                 xt: torch.Tensor, yt: torch.Tensor, batches: Any, settings: TrainSettings, total: int,
                 prog: _Progress, augment: Augment | None, seed: int, device: str) -> float:
    """One epoch over ``batches`` (index lists) of optimiser steps, lr set and EMA updated per step;
    returns the mean training loss."""
    model.train()
    loss_sum, count = torch.zeros((), device=device), 0  # summed on device: no host sync per step
    for idx in batches:
        for group in opt.param_groups:
            group["lr"] = settings.lr_at(prog.step, total)
        ib = torch.as_tensor(idx, device=device)
        xb, yb = xt[ib], yt[ib]
        if augment is not None:
            xb = augment(xb, yb, seed * 1_000_003 + prog.step)
        with autocast(device):
            logits = model(xb)
        loss = loss_fn(logits.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        opt.step()
        prog.step += 1
        if ema is not None:
            ema.update(model)
        loss_sum += loss.detach() * len(idx)
        count += len(idx)
    prog.seen += count
    return float(loss_sum) / max(count, 1)


@torch.no_grad()
def validate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module, batch_size: int,
             device: str) -> dict[str, float]:
    """Validation ``val_loss`` (the training loss), ``val_balanced_loss`` (cross-entropy averaged per
    class, then over classes) and ``val_auroc`` (positive = class 1; one-vs-rest macro for more classes)."""
    model.eval()
    logits = []
    for start in range(0, len(x), batch_size):
        with autocast(device):
            logits.append(model(x[start:start + batch_size]).float())
    z = torch.cat(logits)
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


@torch.no_grad()
def predict_proba(model: nn.Module, x: np.ndarray | torch.Tensor, *, device: str = "cpu",
                  batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities ``[N, classes]`` in eval mode (float64 numpy)."""
    model = model.to(device).eval()
    out = []
    for start in range(0, len(x), batch_size):
        xb = _tensor(x[start:start + batch_size], device, torch.float32)
        with autocast(device):
            logits = model(xb)
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    if not out:
        return np.zeros((0, len(getattr(model, "class_names", (0, 0)))))
    return torch.cat(out).double().numpy()


@torch.no_grad()
def embed(model: nn.Module, x: np.ndarray | torch.Tensor, *, device: str = "cpu", batch_size: int = 256) -> np.ndarray:
    """``model.embed`` features ``[N, D]`` in eval mode (float64 numpy)."""
    model = model.to(device).eval()
    out = []
    for start in range(0, len(x), batch_size):
        xb = _tensor(x[start:start + batch_size], device, torch.float32)
        with autocast(device):
            out.append(model.embed(xb).float().cpu())
    return torch.cat(out).double().numpy()
