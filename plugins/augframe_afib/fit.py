"""Train one classifier with early stopping on validation loss, and predict with it.

The loop keeps the data as tensors on the training device and draws batches by index, so a run
has no per-sample Python work. The epoch order comes from ``augframe.training.EpochSampler``
(seeded by run seed and epoch); dropout draws from a forked, seeded torch RNG, so a run is
replayable and does not disturb the caller's global RNG. bf16 autocast on CUDA.
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
from torch import nn

from augframe.errors import ValidationError
from augframe.training import EpochSampler, autocast, load_train_state, progress, save_train_state

from augframe_afib.focal import FocalLoss

#: ``augment(x, y, seed) -> x``: a per-batch transform of training signals (condition D).
Augment = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


@attrs.frozen
class TrainSettings:
    """Optimiser and stopping rule; the defaults are the reference's three-way protocol."""

    max_epochs: int = 40
    patience: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    focal_alpha: float | None = 0.65
    focal_gamma: float = 2.0
    eval_batch_size: int = 256
    max_steps_per_epoch: int | None = None

    def __attrs_post_init__(self) -> None:
        for name in ("max_epochs", "patience", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValidationError(f"TrainSettings.{name}={getattr(self, name)} must be >= 1")
        if self.lr <= 0:
            raise ValidationError(f"TrainSettings.lr={self.lr} must be positive")


@attrs.frozen(eq=False)
class FitResult:
    """The best-validation-loss weights and the run's history."""

    state: dict[str, torch.Tensor]
    best_epoch: int
    epochs_run: int
    best_val_loss: float
    stopped_early: bool
    history: tuple[dict[str, float], ...]
    samples_seen: int = 0

    @property
    def hit_cap(self) -> bool:
        """True when training ran out of epochs while validation loss was still improving."""
        return not self.stopped_early and self.best_epoch == self.epochs_run


def make_loss(settings: TrainSettings, num_classes: int) -> nn.Module:
    alpha = settings.focal_alpha if num_classes == 2 else None
    return FocalLoss(alpha=alpha, gamma=settings.focal_gamma)


def _tensor(x: np.ndarray | torch.Tensor, device: str, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(x) if not torch.is_tensor(x) else x
    return t.to(device=device, dtype=dtype)


def fit_classifier(
    model: nn.Module, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
    settings: TrainSettings, *, seed: int, device: str = "cpu", augment: Augment | None = None,
    show_progress: bool = False, desc: str = "", state_path: str | Path | None = None,
) -> FitResult:
    """Adam + focal loss, gradient clipping, early stopping on validation loss; returns the best weights.

    With ``state_path``, the full training state (weights, optimiser, RNG, counters, best weights,
    history) is written there atomically after every epoch, and a run that finds it continues
    from the next epoch; the result equals an uninterrupted run. The file is removed at the end.
    """
    if len(x_train) < 1 or len(x_val) < 1:
        raise ValidationError(f"fit_classifier {desc}: empty training ({len(x_train)}) or validation ({len(x_val)}) set")
    num_classes = len(getattr(model, "class_names", ())) or int(max(y_train.max(), y_val.max())) + 1
    model = model.to(device)
    xt, yt = _tensor(x_train, device, torch.float32), _tensor(y_train, device, torch.long)
    xv, yv = _tensor(x_val, device, torch.float32), _tensor(y_val, device, torch.long)
    loss_fn = make_loss(settings, num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    batch = min(settings.batch_size, len(xt))
    sampler = EpochSampler(len(xt), batch, seed=seed, shuffle=True, drop_last=len(xt) >= 2 * batch)
    best_state, best_loss, best_epoch, bad, history = None, math.inf, 0, 0, []
    stopped, seen, start = False, 0, 1
    fork_devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        if state_path is not None and Path(state_path).is_file():
            got = load_train_state(state_path, modules={"model": model}, optimizers={"opt": opt})
            c, extra = got["counters"], got["extra"]
            start, best_epoch, bad, seen = c["epoch"] + 1, c["best_epoch"], c["bad"], c["seen"]
            best_loss, stopped, history = float(extra["best_loss"]), bool(c["stopped"]), list(extra["history"])
            best_state = dict(extra["best_state"])
        for epoch in range(start, settings.max_epochs + 1):
            if stopped:
                break
            sampler.set_epoch(epoch)
            model.train()
            total, count = torch.zeros((), device=device), 0  # summed on device: no host sync per step
            steps = list(sampler)
            if settings.max_steps_per_epoch is not None:
                steps = steps[: settings.max_steps_per_epoch]
            for step, idx in enumerate(progress(steps, desc=f"{desc} epoch {epoch}", enabled=show_progress)):
                ib = torch.as_tensor(idx, device=device)
                xb, yb = xt[ib], yt[ib]
                if augment is not None:
                    xb = augment(xb, yb, seed * 1_000_003 + epoch * 10_007 + step)
                with autocast(device):
                    logits = model(xb)
                loss = loss_fn(logits.float(), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if settings.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                opt.step()
                total += loss.detach() * len(idx)
                count += len(idx)
            seen += count
            val_loss = evaluate_loss(model, xv, yv, loss_fn, settings.eval_batch_size, device)
            history.append({"epoch": epoch, "train_loss": float(total) / max(count, 1), "val_loss": val_loss})
            if val_loss < best_loss:
                best_loss, best_epoch, bad = val_loss, epoch, 0
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            else:
                bad += 1
                stopped = bad >= settings.patience
            if state_path is not None:
                save_train_state(
                    state_path, modules={"model": model}, optimizers={"opt": opt},
                    counters={"epoch": epoch, "best_epoch": best_epoch, "bad": bad, "seen": seen,
                              "stopped": int(stopped)},
                    extra={"best_loss": best_loss, "history": history, "best_state": best_state})
            if stopped:
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    if state_path is not None:
        Path(state_path).unlink(missing_ok=True)
    return FitResult(best_state, best_epoch, len(history), best_loss, stopped, tuple(history), seen)


@torch.no_grad()
def evaluate_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module, batch_size: int,
                  device: str) -> float:
    model.eval()
    total = torch.zeros((), device=x.device)
    for start in range(0, len(x), batch_size):
        with autocast(device):
            logits = model(x[start:start + batch_size])
        total += loss_fn(logits.float(), y[start:start + batch_size]) * len(logits)
    return float(total) / len(x)


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


def fresh_copy(model: nn.Module) -> nn.Module:
    """A deep copy (used to train several runs from one seeded initialisation)."""
    return copy.deepcopy(model)


def augment_with(fn: Any) -> Augment:
    """Wrap a ``(x, y, seed) -> x`` callable, checking it kept the shape."""

    def run(x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
        out = fn(x, y, seed)
        if out.shape != x.shape:
            raise ValidationError(f"augmentation changed the batch shape {tuple(x.shape)} -> {tuple(out.shape)}")
        return out

    return run
