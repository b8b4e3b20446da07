"""Pieces every trainable plugin shares: seeded epoch order, EMA, resumable state, log, autocast.

* :class:`EpochSampler` fixes the global sample order of each epoch from (seed, epoch) and hands
  each rank its slice of every global batch, so a run resumes exactly at any step, also with
  another number of processes (same global batch). Given ``labels`` it draws class-balanced
  batches (minority classes repeated, majority classes subsampled, anew each epoch).
* :func:`warmup_cosine` is the learning-rate factor of a step: linear warm-up, cosine decay.
* :class:`EMA` keeps an exponential moving average of parameters.
* :func:`save_train_state` / :func:`load_train_state` write and read everything needed for an
  exact resume (modules, optimizers, EMA, RNG states, counters) atomically, loadable with
  ``torch.load(weights_only=True)``.
* :class:`TrainLog` appends JSON lines; :func:`progress` wraps tqdm; :func:`autocast` gives bf16
  autocast on CUDA (and on the CPU when asked) and a no-op otherwise; :func:`compile_module` is
  ``torch.compile`` where it pays (CUDA, or the CPU when asked).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from augframe.atomic import atomic_open
from augframe.errors import CheckpointError, ValidationError
from augframe.progress import progress  # noqa: F401  (re-exported: the training loops' bar)
from augframe.seeding import Stream, numpy_rng


# ---- order ---------------------------------------------------------------------------------
class EpochSampler:
    """Batches of indices for one rank: global batch j of epoch e is ``perm_e[j*B:(j+1)*B]``.

    ``perm_e`` depends only on (seed, epoch) and ``B = batch_size * world_size`` is the global
    batch; rank r takes its contiguous part of each global batch. Iterating from ``start_step``
    skips the global batches already consumed, whatever world size consumed them.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1,
                 labels: Sequence[int] | np.ndarray | None = None) -> None:
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValidationError(f"EpochSampler: bad batch_size={batch_size}, rank={rank}, world_size={world_size}")
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.epoch, self.start_step = 0, 0
        self.labels = None if labels is None else np.asarray(labels)
        if self.labels is not None and (self.labels.ndim != 1 or len(self.labels) != n):
            raise ValidationError(f"EpochSampler: labels must be one class per sample ({n}); got shape "
                                  f"{self.labels.shape}")

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def steps_per_epoch(self) -> int:
        return self.n // self.global_batch if self.drop_last else math.ceil(self.n / self.global_batch)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    def order(self) -> np.ndarray:
        if self.labels is not None:
            return self._balanced_order()
        if not self.shuffle:
            return np.arange(self.n)
        return numpy_rng(self.seed, Stream.TRAINING_ORDER, self.epoch).permutation(self.n)

    def _balanced_order(self) -> np.ndarray:
        """``n`` indices taking the classes in turn (position p holds class p mod K), so every
        contiguous slice (a global batch, a rank's part of it) is balanced to within one sample.

        Each class's indices come from back-to-back seeded permutations of that class: a minority
        class repeats (each member once per cycle), a majority class gives a fresh random subset
        every epoch. The class order of the turns is shuffled per epoch too.
        """
        assert self.labels is not None
        rng = numpy_rng(self.seed, Stream.TRAINING_BALANCED, self.epoch)
        classes = np.unique(self.labels)
        turn = rng.permutation(len(classes))
        out = np.empty(self.n, dtype=np.int64)
        for slot, c in enumerate(classes[turn]):
            members = np.flatnonzero(self.labels == c)
            need = len(range(slot, self.n, len(classes)))
            cycles = -(-need // len(members))
            draws = np.concatenate([rng.permutation(members) for _ in range(cycles)])[:need]
            out[slot::len(classes)] = draws
        return out

    def __iter__(self) -> Iterator[list[int]]:
        perm, gb = self.order(), self.global_batch
        for step in range(self.start_step, self.steps_per_epoch()):
            chunk = perm[step * gb:(step + 1) * gb]
            part = chunk[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
            if len(part):
                yield part.tolist()

    def __len__(self) -> int:
        return max(0, self.steps_per_epoch() - self.start_step)


# ---- learning-rate schedule ---------------------------------------------------------------
def warmup_cosine(step: int, total_steps: int, warmup_steps: int = 0, floor: float = 0.0) -> float:
    """Learning-rate factor of optimiser step ``step`` (0-based): linear warm-up, then cosine decay.

    The factor rises as (step + 1) / warmup_steps to 1, then follows a half cosine from 1 at the
    end of the warm-up to ``floor`` at ``total_steps`` (and stays there). A pure function of the
    step, so a resumed run follows the same schedule.
    """
    if total_steps < 1 or warmup_steps < 0 or not 0.0 <= floor <= 1.0:
        raise ValidationError(f"warmup_cosine: total_steps={total_steps} must be >= 1, warmup_steps="
                              f"{warmup_steps} >= 0 and floor={floor} in [0, 1]")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    frac = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * frac))


def _seed_worker(worker_id: int) -> None:
    import torch

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def make_loader(dataset: Any, sampler: EpochSampler, *, num_workers: int = 0, pin_memory: bool = False,
                collate_fn: Any = None) -> Any:
    """A DataLoader that draws batches from ``sampler``; workers are seeded deterministically."""
    import torch
    from torch.utils.data import DataLoader

    g = torch.Generator().manual_seed(int(sampler.seed) * 1_000_003 + sampler.epoch)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
                      worker_init_fn=_seed_worker, generator=g, collate_fn=collate_fn,
                      persistent_workers=False)


# ---- EMA -----------------------------------------------------------------------------------
class EMA:
    """Exponential moving average of a module's floating parameters and buffers.

    With ``warmup`` the n-th update (0-based) uses min(decay, (1 + n) / (10 + n)), so early averages
    follow the model instead of its random initialisation; the update count is part of the state.
    """

    def __init__(self, module: Any, decay: float = 0.999, warmup: bool = False) -> None:
        if not 0.0 < decay < 1.0:
            raise ValidationError(f"EMA decay={decay} must lie in (0, 1)")
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def update(self, module: Any) -> None:
        import torch

        n = self.updates
        decay = min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay
        with torch.no_grad():
            for k, v in module.state_dict().items():
                s = self.shadow[k]
                if v.is_floating_point():
                    s.lerp_(v.detach(), 1.0 - decay)
                else:
                    s.copy_(v)
        self.updates = n + 1

    def copy_to(self, module: Any) -> None:
        module.load_state_dict(self.shadow, strict=True)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.decay, self.updates = float(state["decay"]), int(state.get("updates", 0))
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)


# ---- resumable state -----------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Torch CPU (and CUDA, when present) RNG states."""
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(path: str | os.PathLike[str], *, modules: Mapping[str, Any],
                     optimizers: Mapping[str, Any] = {}, ema: Mapping[str, EMA] = {},
                     counters: Mapping[str, int] = {}, extra: Mapping[str, Any] = {},
                     config: Mapping[str, Any] = {}) -> Path:
    """Write everything for an exact resume to ``path`` atomically (torch.save, weights_only-safe)."""
    import torch

    path = Path(path)
    payload = {
        "format": "augframe-train-state-1",
        "modules": {k: m.state_dict() for k, m in modules.items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "ema": {k: e.state_dict() for k, e in ema.items()},
        "counters": {k: int(v) for k, v in counters.items()},
        "rng": rng_state(),
        "extra": dict(extra),
        "config_json": json.dumps(dict(config), sort_keys=True),
    }
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)
    return path


def load_train_state(path: str | os.PathLike[str], *, modules: Mapping[str, Any],
                     optimizers: Mapping[str, Any] = {}, ema: Mapping[str, EMA] = {},
                     restore_rng: bool = True) -> dict[str, Any]:
    """Restore modules/optimizers/EMA/RNG from ``path``; return {'counters', 'extra', 'config'}."""
    from augframe.checkpoint import load_into, load_torch_checkpoint

    payload = load_torch_checkpoint(path)
    if not isinstance(payload, dict) or payload.get("format") != "augframe-train-state-1":
        raise CheckpointError(f"{str(path)!r} is not an augframe training state (save_train_state writes them)")
    try:
        for name, module in modules.items():
            if name not in payload["modules"]:
                raise CheckpointError(f"training state {str(path)!r} has no module {name!r}")
            load_into(module, payload["modules"][name], what=f"{name} in {path}")
        for name, opt in optimizers.items():
            opt.load_state_dict(payload["optimizers"][name])
        for name, e in ema.items():
            e.load_state_dict(payload["ema"][name])
        if restore_rng:
            set_rng_state(payload["rng"])
        return {"counters": payload["counters"], "extra": payload["extra"],
                "config": json.loads(payload["config_json"])}
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(f"training state {str(path)!r} is incomplete or damaged ({type(exc).__name__}: "
                              f"{exc}); resume from another state file or start the fit again") from exc


# ---- logging, progress, precision -----------------------------------------------------------
class TrainLog:
    """Append-only JSON-lines training log (one flushed line per record)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self.records: list[dict[str, Any]] = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **record: Any) -> None:
        clean = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in record.items()}
        self.records.append(clean)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(clean) + "\n")
                f.flush()

    @staticmethod
    def read(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]


def autocast(device: Any, enabled: bool = True, cpu_bf16: bool = False) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA (and on the CPU when ``cpu_bf16``); a no-op context otherwise."""
    import torch

    dev = torch.device(device)
    if enabled and dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if enabled and cpu_bf16 and dev.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compile_module(module: Any, device: Any, *, enabled: bool = True, mode: str = "max-autotune-no-cudagraphs",
                   cpu: bool = False) -> Any:
    """``torch.compile(module)`` on CUDA when ``enabled``; on the CPU only when ``cpu`` is also set.

    Compilation costs tens of seconds to minutes; it pays for long generation or training runs
    with fixed shapes, not for short CPU jobs, so the CPU path stays eager unless asked. On the CPU,
    the module is compiled for inference with frozen weights (inductor ``freezing``: conv weights
    pre-packed for oneDNN, pointwise ops fused); call it under ``torch.inference_mode``/``no_grad``.
    """
    import torch

    cuda = torch.device(device).type == "cuda"
    if enabled and cuda and torch.cuda.is_available():
        return torch.compile(module, mode=mode, dynamic=False)
    if enabled and cpu and not cuda:
        return torch.compile(module, options={"freezing": True})
    return module


def resolve_device(device: str | None) -> str:
    """'auto' -> 'cuda' when available, else 'cpu'; an unavailable CUDA request is an error."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValidationError(f"device={device!r} was asked for but no CUDA device is available; use 'cpu' or 'auto'")
    return str(device)
