"""Training on several processes with torch.distributed: one code path from 1 CPU to N GPUs.

Launch with ``torchrun --nproc-per-node N script.py`` (or :func:`launch` on one machine); every
process calls :func:`init_distributed`, which reads torchrun's environment and starts a process
group (``nccl`` on CUDA, ``gloo`` on the CPU). Without that environment it returns a one-process
context and every helper here becomes a no-op, so the same script runs unchanged on a laptop.

What makes N processes train exactly like one process with the same global batch:

* order: :func:`rank_sampler` builds the core's :class:`~augframe.training.EpochSampler`: the
  global order of epoch e is fixed by (seed, e) and rank r takes its slice of every global batch;
* gradients: :func:`wrap_model` wraps the module in DistributedDataParallel, which averages the
  ranks' gradients, i.e. the gradient of the global-batch mean when each rank returns its local mean;
* noise: :func:`train_steps` hands the loss per-sample seeds that depend on (seed, epoch, sample
  index) only, so diffusion noise is the same whichever rank draws a sample
  (use :func:`augframe.seeding.randn` with them; ``torch.randn`` in a loss breaks the equality);
* BatchNorm: batch statistics must span the global batch. :func:`wrap_model` converts BatchNorm
  layers: ``nn.SyncBatchNorm`` on CUDA, :class:`CrossRankBatchNorm` (ours, gloo) on the CPU,
  because torch's SyncBatchNorm refuses CPU tensors;
* resume: one writer (rank 0) saves :func:`augframe.training.save_train_state` with counters in
  global steps, so a checkpoint taken on 2 ranks resumes on 1 (or 8) at the same global batch.

Dropout draws from each process's own RNG, so a model with active dropout trains correctly but not
bit-for-bit like a one-process run.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from augframe.errors import CheckpointError, ValidationError
from augframe.seeding import derive_seeds
from augframe.training import EMA, EpochSampler, TrainLog, autocast, load_train_state, make_loader, progress, \
    resolve_device, save_train_state

if TYPE_CHECKING:  # pragma: no cover
    import torch

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# ---- process group -------------------------------------------------------------------------
@attrs.frozen
class DistContext:
    """Who this process is: rank among world_size, its local rank on the node and its device.

    ``backend`` is None when no process group is running (a plain one-process run).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on the one process that writes checkpoints, logs and banks."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when collectives go through a process group."""
        return self.backend is not None


def _env_int(name: str) -> int:
    raw = os.environ.get(name)
    if raw is None:
        raise ValidationError(
            f"environment variable {name} is missing while WORLD_SIZE={os.environ.get('WORLD_SIZE')}; "
            f"launch with torchrun (it sets {', '.join(TORCHRUN_VARS)}) or augframe.distributed.launch"
        )
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"environment variable {name}={raw!r} is not an integer") from None


def init_distributed(device: str | None = "auto", backend: str | None = None,
                     timeout_s: float = 1800.0) -> DistContext:
    """Join the process group torchrun described in the environment (or run as one process).

    ``device='auto'`` picks ``cuda:LOCAL_RANK`` when CUDA is present, else the CPU; the backend
    defaults to ``nccl`` on CUDA and ``gloo`` on the CPU. Calling it in a process whose group is
    already initialised returns the context of that group.
    """
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        return DistContext(device=resolve_device(device))
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    dev = resolve_device(device)
    if dev.startswith("cuda"):
        dev = f"cuda:{local_rank}" if dev == "cuda" else dev
        torch.cuda.set_device(torch.device(dev))
    backend = backend or ("nccl" if dev.startswith("cuda") else "gloo")
    if backend == "nccl" and not dev.startswith("cuda"):
        raise ValidationError(f"backend 'nccl' needs CUDA devices but device={dev!r}; use backend='gloo' on the CPU")
    if not dist.is_initialized():
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
        if missing:
            raise ValidationError(
                f"environment variables {missing} are missing for WORLD_SIZE={world}; launch with torchrun "
                f"(it sets {', '.join(TORCHRUN_VARS)}) or augframe.distributed.launch"
            )
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s))
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                       device=dev, backend=dist.get_backend())


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (safe to call on a one-process context)."""
    import torch.distributed as dist

    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op on one process)."""
    import torch.distributed as dist

    if not ctx.active:
        return
    if ctx.backend == "nccl":
        dist.barrier(device_ids=[ctx.local_rank])
    else:
        dist.barrier()


def free_port() -> int:
    """A TCP port free on this machine now (for MASTER_PORT of a one-node launch)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launched(local_rank: int, fn: Callable[..., Any], world_size: int, port: int, threads: int,
              args: tuple[Any, ...]) -> None:
    import torch

    os.environ.update(RANK=str(local_rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    fn(*args)


def launch(fn: Callable[..., Any], world_size: int, *args: Any, threads: int = 1) -> None:
    """Run ``fn(*args)`` in ``world_size`` fresh processes on this machine, with torchrun's variables.

    For tests, benchmarks and single-node jobs without torchrun; ``fn`` must be importable (a module
    level function) and usually starts with :func:`init_distributed`. A failure on any rank raises
    here with that rank's traceback.
    """
    import torch.multiprocessing as mp

    if world_size < 1:
        raise ValidationError(f"launch: world_size={world_size} must be >= 1")
    mp.spawn(_launched, args=(fn, world_size, free_port(), threads, args), nprocs=world_size, join=True)


# ---- BatchNorm across ranks ------------------------------------------------------------------
def _sum_across_ranks() -> Any:
    import torch
    import torch.distributed as dist

    class SumAcrossRanks(torch.autograd.Function):
        """all_reduce(SUM) whose backward is again all_reduce(SUM) of the incoming gradient."""

        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            out = x.clone()
            dist.all_reduce(out)
            return out

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            out = grad.clone()
            dist.all_reduce(out)
            return out

    return SumAcrossRanks


_SUM_FN: Any = None


def sum_across_ranks(x: "torch.Tensor") -> "torch.Tensor":
    """Differentiable sum of ``x`` over ranks (identity without a process group)."""
    import torch.distributed as dist

    global _SUM_FN
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    if _SUM_FN is None:
        _SUM_FN = _sum_across_ranks()
    return _SUM_FN.apply(x)


def _batchnorm_class() -> type:
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    class CrossRankBatchNorm(_BatchNorm):
        """BatchNorm whose training statistics span the batches of all ranks (any backend, CPU too).

        Same parameters, buffers and state-dict keys as ``nn.BatchNorm1d/2d/3d``; with one process
        or in eval mode it is exactly that module. Statistics are summed in float64 so the global
        mean and variance match a one-process BatchNorm over the global batch to float rounding.
        """

        def _check_input_dim(self, input: torch.Tensor) -> None:
            if input.dim() < 2:
                raise ValidationError(f"CrossRankBatchNorm expects [N, C, ...] input, got {tuple(input.shape)}")

        def forward(self, input: torch.Tensor) -> torch.Tensor:
            import torch.distributed as dist

            multi = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
            if not (self.training and multi):
                return super().forward(input)
            self._check_input_dim(input)
            dims = [0, *range(2, input.dim())]
            x64 = input.double()
            count = torch.tensor([input.numel() / input.shape[1]], dtype=torch.float64, device=input.device)
            stats = torch.cat([x64.sum(dims), (x64 * x64).sum(dims), count])
            stats = sum_across_ranks(stats)
            c = input.shape[1]
            n = stats[-1]
            mean = stats[:c] / n
            var = (stats[c:2 * c] / n - mean * mean).clamp_min(0.0)
            if self.track_running_stats:
                tracked, running_mean, running_var = self.num_batches_tracked, self.running_mean, self.running_var
                if tracked is None or running_mean is None or running_var is None:
                    raise ValidationError("CrossRankBatchNorm has track_running_stats=True but no running-statistics "
                                          "buffers (it was switched on after construction); construct the module "
                                          "with track_running_stats=True instead")
                with torch.no_grad():
                    tracked.add_(1)
                    momentum = (1.0 / float(tracked)) if self.momentum is None else self.momentum
                    unbiased = var * (n / (n - 1)) if float(n) > 1 else var
                    running_mean.lerp_(mean.to(running_mean.dtype), momentum)
                    running_var.lerp_(unbiased.to(running_var.dtype), momentum)
            shape = [1, c] + [1] * (input.dim() - 2)
            inv = torch.rsqrt(var + self.eps).to(input.dtype).view(shape)
            out = (input - mean.to(input.dtype).view(shape)) * inv
            if self.affine:
                out = out * self.weight.view(shape) + self.bias.view(shape)
            return out

    return CrossRankBatchNorm


_BN_CLASS: Any = None


def cross_rank_batchnorm_class() -> type:
    """The :class:`CrossRankBatchNorm` class (built lazily so importing this module needs no torch)."""
    global _BN_CLASS
    if _BN_CLASS is None:
        _BN_CLASS = _batchnorm_class()
    return _BN_CLASS


def convert_batchnorm(module: Any, device: str = "cpu") -> Any:
    """Replace BatchNorm layers so batch statistics span all ranks; parameters keep their identity.

    CUDA: ``nn.SyncBatchNorm`` (torch's fused kernels). CPU: :class:`CrossRankBatchNorm`. State-dict
    keys do not change, so checkpoints load into converted and plain models alike.
    """
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    if str(device).startswith("cuda"):
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    cls = cross_rank_batchnorm_class()
    if isinstance(module, _BatchNorm) and not isinstance(module, (cls, torch.nn.SyncBatchNorm)):
        new = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.training = module.training
        return new
    for name, child in module.named_children():
        new_child = convert_batchnorm(child, device)
        if new_child is not child:
            setattr(module, name, new_child)
    return module


# ---- model, order, metrics ------------------------------------------------------------------
def wrap_model(module: Any, ctx: DistContext, *, sync_batchnorm: bool = True,
               find_unused_parameters: bool = False, **ddp_kwargs: Any) -> Any:
    """Move ``module`` to the rank's device and wrap it in DistributedDataParallel.

    Build the optimizer AFTER wrapping (from ``unwrap(model).parameters()``). One process: the
    module on its device, unwrapped. ``sync_batchnorm`` converts BatchNorm layers (see
    :func:`convert_batchnorm`); without it each rank normalises by its own share of the batch.
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    module = module.to(ctx.device)
    if not ctx.active:
        return module
    if sync_batchnorm:
        module = convert_batchnorm(module, ctx.device)
    device_ids = [ctx.local_rank] if ctx.device.startswith("cuda") else None
    return DDP(module, device_ids=device_ids, find_unused_parameters=find_unused_parameters, **ddp_kwargs)


def unwrap(model: Any) -> Any:
    """The plain module inside a DDP wrapper (or the module itself)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    return model.module if isinstance(model, DDP) else model


def rank_sampler(n: int, global_batch: int, ctx: DistContext, *, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True, labels: Any = None) -> EpochSampler:
    """This rank's :class:`EpochSampler` for a fixed global batch split evenly over ranks (class-balanced
    batches when given the samples' ``labels``)."""
    if global_batch % ctx.world_size:
        raise ValidationError(
            f"global_batch={global_batch} does not split evenly over world_size={ctx.world_size}; "
            f"pick a multiple of {ctx.world_size} so every rank gets the same share"
        )
    return EpochSampler(n, global_batch // ctx.world_size, seed=seed, shuffle=shuffle, drop_last=drop_last,
                        rank=ctx.rank, world_size=ctx.world_size, labels=labels)


def epoch_sample_seeds(seed: int, epoch: int, n: int) -> np.ndarray:
    """Per-sample int64 seeds of epoch ``epoch``: entry i depends only on (seed, epoch, i)."""
    epoch_seed = int(derive_seeds(seed, 1, offset=epoch)[0])
    return derive_seeds(epoch_seed, n)


def all_reduce_metrics(ctx: DistContext, sums: Mapping[str, Any], count: Any) -> dict[str, float]:
    """Global means: each rank passes per-metric SUMS over its samples and its sample count.

    One collective for all metrics; the values may be tensors on the device (one host sync here).
    """
    import torch

    names = sorted(sums)
    parts = [torch.as_tensor(sums[k], dtype=torch.float64, device=ctx.device).reshape(1) for k in names]
    parts.append(torch.as_tensor(count, dtype=torch.float64, device=ctx.device).reshape(1))
    flat = torch.cat(parts)
    if ctx.active:
        import torch.distributed as dist

        dist.all_reduce(flat)
    values = flat.cpu().tolist()
    total = values[-1]
    if total <= 0:
        raise ValidationError("all_reduce_metrics: the total sample count over ranks is 0")
    return {k: v / total for k, v in zip(names, values[:-1])}


def save_on_main(ctx: DistContext, path: str | os.PathLike[str], **state: Any) -> Path:
    """Rank 0 writes :func:`save_train_state` (atomically); every rank waits until it is on disk."""
    path = Path(path)
    if ctx.is_main:
        save_train_state(path, **state)
    barrier(ctx)
    return path


# ---- the generic training loop ---------------------------------------------------------------
@attrs.frozen
class StepBatch:
    """What a loss function gets: the rank's samples on its device and their per-sample seeds.

    ``index`` holds the samples' indices in the dataset; ``seeds`` the per-sample seeds of this
    epoch (from :func:`epoch_sample_seeds`), to feed :func:`augframe.seeding.randn`.
    """

    x: Any
    y: Any
    index: Any
    seeds: Any
    epoch: int
    step: int
    global_step: int = 0


@attrs.frozen
class TrainPlan:
    """How long and how to train: all counts are in GLOBAL steps and the GLOBAL batch.

    ``max_steps_per_epoch`` ends each epoch early (short runs over large data); ``time_budget_s``
    ends the run before the first step that starts later than that after the call (one process
    only: ranks would stop at different steps); ``drop_last=False`` keeps an epoch's last, smaller
    batch; ``autocast`` is bf16
    autocast on CUDA, and on the CPU too with ``cpu_bf16``; ``progress`` shows a bar (None: on
    terminals) labelled ``desc``.
    """

    global_batch: int
    seed: int = 0
    epochs: int = 1
    max_steps: int | None = None
    max_steps_per_epoch: int | None = None
    time_budget_s: float | None = None
    grad_clip: float | None = None
    checkpoint_every: int | None = None
    log_every: int = 10
    shuffle: bool = True
    drop_last: bool = True
    num_workers: int = 0
    autocast: bool = True
    cpu_bf16: bool = False
    progress: bool | None = False
    desc: str = "train"

    def __attrs_post_init__(self) -> None:
        if self.global_batch < 1 or self.epochs < 0 or self.log_every < 1:
            raise ValidationError(f"TrainPlan: bad global_batch/epochs/log_every in {self}")
        for name in ("max_steps", "max_steps_per_epoch"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "max_steps" else 1):
                raise ValidationError(f"TrainPlan.{name}={value} must be >= {0 if name == 'max_steps' else 1}")


@attrs.frozen
class TrainProgress:
    """Where a run stands (what the checkpoint's counters hold) and what it measured."""

    epoch: int
    step: int
    global_step: int
    samples: int
    seconds: float
    last_metrics: Mapping[str, float] = attrs.field(factory=dict)
    resumed_from: int | None = None
    stopped: bool = False


@attrs.frozen(eq=False)
class TensorData:
    """A dataset held as tensors ``x`` [N, ...] and ``y`` [N] on the training device: :func:`train_steps`
    takes its batches by indexing them (no DataLoader, no per-sample Python work, no copy to the device)."""

    x: Any
    y: Any

    def __len__(self) -> int:
        return len(self.x)

    def batches(self, sampler: EpochSampler) -> Iterator[tuple[Any, Any, Any]]:
        """``(x, y, index)`` for each index batch of the sampler's current epoch."""
        import torch

        for idx in sampler:
            ib = torch.as_tensor(idx, device=self.x.device)
            yield self.x[ib], self.y[ib], ib


class Indexed:
    """Dataset items ``(x, y)`` as ``(x, y, index)``, so a training loop knows each sample's seed."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Any, int, int]:
        x, y = self.data[i]
        return x, y, i


def _check_same_config(path: Any, saved: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    now = json.loads(json.dumps(dict(config), sort_keys=True))
    diff = sorted(k for k in set(now) | set(saved) if now.get(k) != saved.get(k))
    if diff:
        raise CheckpointError(f"training state {str(path)!r} was made with other settings ({diff}); "
                              "use a fresh workdir or the same settings to resume")


LossFn = Callable[[Any, StepBatch], "tuple[torch.Tensor, Mapping[str, Any]]"]
#: ``on_epoch(progress) -> stop``: called at the end of every epoch and at the run's last step,
#: before that step's checkpoint (validation, model selection, early stopping). A hook with
#: ``state_dict()`` / ``load_state_dict(state)`` has that state saved in the training state and
#: restored on resume.
EpochHook = Callable[[TrainProgress], bool]


def train_steps(ctx: DistContext, model: Any, optimizer: Any, dataset: Any, loss_fn: LossFn, plan: TrainPlan, *,
                modules: Mapping[str, Any] | None = None, ema: EMA | None = None,
                state_path: str | os.PathLike[str] | None = None, log: TrainLog | None = None,
                config: Mapping[str, Any] = {}, on_step: Callable[[TrainProgress], None] | None = None,
                log_fields: Mapping[str, Any] = {}, start: TrainProgress | None = None,
                lr_at: Callable[[int], float] | None = None, on_epoch: EpochHook | None = None,
                labels: Any = None) -> TrainProgress:
    """Train ``model`` (from :func:`wrap_model`) on this rank's share of every global batch.

    ``loss_fn(model, batch)`` returns ``(loss, metrics)``: the MEAN loss over the rank's samples
    (DDP then averages ranks into the global-batch mean) and per-metric MEANS to log. When
    ``state_path`` exists the run resumes from it (any world size, same global batch, same
    ``config``: pass the settings a resume must not change); rank 0 writes it every
    ``checkpoint_every`` global steps and at the end. Without a state file,
    ``start`` (a previous call's result) continues a run in memory. ``modules`` names what is
    saved (default ``{'model': unwrap(model)}``); ``ema`` is updated after every step. Every
    ``log_every`` steps rank 0 logs the means since the last record, the throughput and ``log_fields``.
    ``lr_at(global_step)`` (0-based) sets every parameter group's learning rate before each step.
    ``dataset`` is a map-style dataset of ``(x, y)`` read through a DataLoader, or a
    :class:`TensorData` indexed in place. With ``labels`` (one class per sample) every batch is
    class-balanced (:class:`~augframe.training.EpochSampler`). ``on_epoch`` (an :data:`EpochHook`)
    returns True to end the run; a run it ended stays ended when resumed.
    """
    import torch

    if ctx.active and plan.time_budget_s is not None:
        raise ValidationError("TrainPlan.time_budget_s works on one process only (each rank's clock would "
                              "stop it at another step); use max_steps on several ranks")
    modules = dict(modules or {"model": unwrap(model)})
    emas = {"ema": ema} if ema is not None else {}
    epoch, step, global_step = (start.epoch, start.step, start.global_step) if start is not None else (0, 0, 0)
    stopped = start is not None and start.stopped
    stateful: Any = on_epoch if hasattr(on_epoch, "state_dict") else None  # its state is saved and restored
    resumed_from = None
    if state_path is not None and Path(state_path).exists():
        info = load_train_state(state_path, modules=modules, optimizers={"optimizer": optimizer}, ema=emas)
        _check_same_config(state_path, info["config"], config)
        saved_gb = info["extra"].get("global_batch")
        if saved_gb != plan.global_batch:
            raise CheckpointError(
                f"training state {str(state_path)!r} was made with global_batch={saved_gb}, this run asks for "
                f"{plan.global_batch}; an exact resume needs the same global batch (any world size)"
            )
        epoch, step, global_step = (int(info["counters"][k]) for k in ("epoch", "step", "global_step"))
        stopped = bool(info["counters"].get("stopped", 0))
        if stateful is not None:
            if "on_epoch" not in info["extra"]:
                raise CheckpointError(f"training state {str(state_path)!r} was made without an epoch hook; "
                                      "use a fresh workdir to train with one")
            stateful.load_state_dict(info["extra"]["on_epoch"])
        resumed_from = global_step
    sampler = rank_sampler(len(dataset), plan.global_batch, ctx, seed=plan.seed, shuffle=plan.shuffle,
                           drop_last=plan.drop_last, labels=labels)
    per_epoch = min(sampler.steps_per_epoch(), plan.max_steps_per_epoch or sampler.steps_per_epoch())
    if per_epoch == 0:
        raise ValidationError(f"dataset of {len(dataset)} samples holds no full global batch of {plan.global_batch}")
    loader = None if isinstance(dataset, TensorData) else make_loader(
        Indexed(dataset), sampler, num_workers=plan.num_workers, pin_memory=ctx.device.startswith("cuda"))

    samples, t0 = 0, time.perf_counter()

    def save() -> None:
        if state_path is not None:
            save_on_main(ctx, state_path, modules=modules, optimizers={"optimizer": optimizer}, ema=emas,
                         counters={"epoch": epoch, "step": step, "global_step": global_step, "stopped": int(stopped)},
                         extra={"global_batch": plan.global_batch, "world_size": ctx.world_size, "seed": plan.seed,
                                **({"on_epoch": stateful.state_dict()} if stateful is not None else {})},
                         config=config)

    def where() -> TrainProgress:
        return TrainProgress(epoch, step, global_step, samples, time.perf_counter() - t0, last, resumed_from, stopped)

    def done() -> bool:
        over_time = plan.time_budget_s is not None and time.perf_counter() - t0 > plan.time_budget_s
        return stopped or over_time or (plan.max_steps is not None and global_step >= plan.max_steps)

    params = [p for p in unwrap(model).parameters() if p.requires_grad]
    sums: dict[str, Any] = {}
    count = 0
    last: dict[str, float] = {}
    logged_samples, logged_t = 0, t0
    total = plan.epochs * per_epoch if plan.max_steps is None else min(plan.max_steps, plan.epochs * per_epoch)
    bar = progress(None, total=max(0, total - global_step), desc=plan.desc, enabled=plan.progress)
    model.train()
    while epoch < plan.epochs and not done():
        sampler.set_epoch(epoch, start_step=step)
        seed_table = torch.from_numpy(epoch_sample_seeds(plan.seed, epoch, len(dataset))).to(ctx.device)
        for x, y, idx in (dataset.batches(sampler) if loader is None else loader):
            x = x.to(ctx.device, non_blocking=True)
            y = y.to(ctx.device, non_blocking=True)
            seeds = seed_table[idx.to(ctx.device, non_blocking=True)]
            batch = StepBatch(x=x, y=y, index=idx, seeds=seeds, epoch=epoch, step=step, global_step=global_step)
            if lr_at is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(global_step)
            optimizer.zero_grad(set_to_none=True)
            with autocast(ctx.device, plan.autocast, cpu_bf16=plan.cpu_bf16):
                loss, metrics = loss_fn(model, batch)
            loss.backward()
            if plan.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, plan.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(unwrap(model))
            n = len(x)
            for k, v in {"loss": loss, **metrics}.items():
                v = v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v))
                sums[k] = sums.get(k, 0.0) + v * n
            count += n
            samples += n * ctx.world_size
            step += 1
            global_step += 1
            if bar is not None:
                bar.update(1)
            if step >= per_epoch:
                epoch, step = epoch + 1, 0
            finished = done()
            if global_step % plan.log_every == 0 or finished:
                last = all_reduce_metrics(ctx, sums, count)
                sums, count = {}, 0
                now = time.perf_counter()
                if log is not None and ctx.is_main:
                    log.write(**log_fields, epoch=epoch, step=step, global_step=global_step, seconds=now - logged_t,
                              samples_per_s=(samples - logged_samples) / max(now - logged_t, 1e-9), **last)
                logged_samples, logged_t = samples, now
            if on_epoch is not None and (step == 0 or finished):
                stopped = bool(on_epoch(where()))
                model.train()  # the hook may have switched modes (validation)
            if plan.checkpoint_every and global_step % plan.checkpoint_every == 0:
                save()
            if on_step is not None:
                on_step(where())
            if finished or stopped or step == 0:
                break
    if bar is not None:
        bar.close()
    if count:
        last = all_reduce_metrics(ctx, sums, count)
    if not (plan.checkpoint_every and global_step % plan.checkpoint_every == 0):
        save()
    return where()


__all__ = [
    "DistContext", "EpochHook", "StepBatch", "TensorData", "TrainPlan", "TrainProgress", "all_reduce_metrics",
    "barrier", "convert_batchnorm", "cross_rank_batchnorm_class", "epoch_sample_seeds", "free_port",
    "init_distributed", "launch", "rank_sampler", "save_on_main", "shutdown", "sum_across_ranks", "train_steps",
    "unwrap", "wrap_model",
]
