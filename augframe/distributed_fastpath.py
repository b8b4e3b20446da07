"""GPU fast-path helpers for generators and training loops; every one runs (plainly) on the CPU.

* :func:`configure_cuda`: cuDNN autotuning for fixed shapes and TF32 matmuls (no-op on the CPU).
* :func:`to_device`: host -> device copies from pinned memory with ``non_blocking=True``, so the copy
  overlaps compute instead of stalling the host; nested tuples/lists/dicts are moved leaf by leaf.
* :class:`DevicePrefetcher`: keeps the NEXT batch's copy in flight on a side CUDA stream.
* :class:`GraphedStep`: captures a fixed-shape step function (one DDIM/CFG sampling step, one
  training step) into a CUDA graph and replays it, removing the per-kernel launch cost that
  dominates small-batch sampling. On the CPU (or when capture is disabled) it calls the function
  eagerly and says so in :attr:`GraphedStep.reason`.
* :func:`compile_module`: ``torch.compile`` on CUDA when asked; the CPU keeps the eager module.

Memory layout: ECG tensors are ``[N, leads, samples]``, contiguous. For 1-D convolutions that is
already the layout cuDNN wants (it runs them as NCHW with H = 1); ``torch.channels_last`` applies
to 4-D tensors only and brings nothing here. What does matter: keep the CFG pair as ONE batch of 2B,
keep shapes fixed across steps (cuDNN autotuning and CUDA graphs both rely on it), index schedule
tables with device tensors (a Python int timestep would force a host sync or a new graph per step),
and run under bf16 autocast (:func:`augframe.training.autocast`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from augframe.errors import ValidationError

log = logging.getLogger(__name__)


def _is_cuda(device: Any) -> bool:
    import torch

    return torch.device(device).type == "cuda"


def configure_cuda(device: Any, *, benchmark: bool = True, tf32: bool = True) -> dict[str, Any]:
    """Turn on cuDNN autotuning (fixed shapes) and TF32 matmuls for ``device``; returns what was set."""
    import torch

    if not _is_cuda(device) or not torch.cuda.is_available():
        return {"device": str(device), "changed": False}
    torch.backends.cudnn.benchmark = benchmark
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    return {"device": str(device), "changed": True, "cudnn_benchmark": benchmark, "tf32": tf32}


def to_device(data: Any, device: Any, *, pin: bool = True) -> Any:
    """Move tensors in ``data`` (tensor, tuple, list, dict) to ``device`` without blocking the host.

    For CUDA, CPU tensors are pinned first (page-locked memory is what makes ``non_blocking`` copies
    asynchronous). On the CPU the objects are returned unchanged (no copy).
    """
    import torch

    cuda = _is_cuda(device)

    def move(x: Any) -> Any:
        if torch.is_tensor(x):
            if not cuda:
                return x if x.device == torch.device(device) else x.to(device)
            if pin and x.device.type == "cpu" and not x.is_pinned():
                x = x.pin_memory()
            return x.to(device, non_blocking=True)
        if isinstance(x, dict):
            return {k: move(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            out = [move(v) for v in x]
            return type(x)(out) if isinstance(x, list) else tuple(out)
        return x

    return move(data)


class DevicePrefetcher:
    """Iterate ``loader`` with the next batch already on its way to ``device`` (side CUDA stream).

    On the CPU it yields the loader's batches unchanged. Use with ``pin_memory=True`` loaders.
    """

    def __init__(self, loader: Iterable[Any], device: Any) -> None:
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        import torch

        if not (_is_cuda(self.device) and torch.cuda.is_available()):
            yield from self.loader
            return
        stream = torch.cuda.Stream(device=self.device)
        it = iter(self.loader)

        def preload() -> Any:
            try:
                batch = next(it)
            except StopIteration:
                return None
            with torch.cuda.stream(stream):
                return to_device(batch, self.device)

        nxt = preload()
        while nxt is not None:
            torch.cuda.current_stream(self.device).wait_stream(stream)
            batch = nxt
            _record(batch, torch.cuda.current_stream(self.device))
            nxt = preload()
            yield batch


def _record(data: Any, stream: Any) -> None:
    """Tell the caching allocator that ``stream`` uses these tensors (made on the side stream)."""
    import torch

    if torch.is_tensor(data):
        data.record_stream(stream)
    elif isinstance(data, dict):
        for v in data.values():
            _record(v, stream)
    elif isinstance(data, (list, tuple)):
        for v in data:
            _record(v, stream)


class GraphedStep:
    """A fixed-shape step function captured as a CUDA graph (eager fallback elsewhere).

    ``fn(*tensors)`` must take tensors only (constants are closed over), return a tensor or a tuple
    of tensors, do no host synchronisation (no ``.item()``, no Python branching on tensor values)
    and allocate the same way on every call. Inputs are copied into static buffers, the graph is
    replayed, and the static outputs are returned: they are OVERWRITTEN by the next call, so clone
    what must survive. Calls with other shapes or dtypes than the example raise.
    """

    def __init__(self, fn: Callable[..., Any], example_args: tuple[Any, ...], *, enabled: bool = True,
                 warmup: int = 3) -> None:
        import torch

        if not example_args or not all(torch.is_tensor(a) for a in example_args):
            raise ValidationError("GraphedStep needs example tensors (the fixed-shape inputs of the step)")
        self.fn = fn
        self.signature = tuple((tuple(a.shape), a.dtype, a.device) for a in example_args)
        device = example_args[0].device
        self.graph: Any = None
        if not enabled:
            self.reason = "CUDA graph capture disabled by the caller; running eagerly"
        elif device.type != "cuda":
            self.reason = f"CUDA graphs need a CUDA device; inputs are on {device}, running eagerly"
        else:
            self.reason = "captured"
            self._capture(example_args, warmup)
        if self.graph is None:
            log.info("GraphedStep(%s): %s", getattr(fn, "__name__", "fn"), self.reason)

    @property
    def graphed(self) -> bool:
        return self.graph is not None

    def _capture(self, example_args: tuple[Any, ...], warmup: int) -> None:
        import torch

        self.static_in = tuple(a.detach().clone() for a in example_args)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(max(1, warmup)):  # warm-up outside the graph (cuDNN autotuning, allocator)
                self.fn(*self.static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.static_out = self.fn(*self.static_in)
        self.graph = graph

    def _check(self, args: tuple[Any, ...]) -> None:
        got = tuple((tuple(a.shape), a.dtype, a.device) for a in args)
        if got != self.signature:
            raise ValidationError(
                f"GraphedStep was built for inputs {[(s, str(d)) for s, d, _ in self.signature]} but got "
                f"{[(s, str(d)) for s, d, _ in got]}; build one GraphedStep per shape (pad the last batch)"
            )

    def __call__(self, *args: Any) -> Any:
        self._check(args)
        if self.graph is None:
            return self.fn(*args)
        for static, a in zip(self.static_in, args):
            static.copy_(a, non_blocking=True)
        self.graph.replay()
        return self.static_out


def compile_module(module: Any, device: Any, *, enabled: bool = True, mode: str = "max-autotune-no-cudagraphs",
                   cpu: bool = False) -> Any:
    """``torch.compile(module)`` on CUDA when ``enabled``; on the CPU only when ``cpu`` is also set.

    Compilation costs tens of seconds to minutes; it pays for long generation or training runs
    with fixed shapes, not for short CPU jobs, so the CPU path stays eager unless asked. On the CPU,
    the module is compiled for inference with frozen weights (inductor ``freezing``: conv weights
    pre-packed for oneDNN, pointwise ops fused); call it under ``torch.inference_mode``/``no_grad``.
    """
    import torch

    if enabled and _is_cuda(device) and torch.cuda.is_available():
        return torch.compile(module, mode=mode, dynamic=False)
    if enabled and cpu and not _is_cuda(device):
        return torch.compile(module, options={"freezing": True})
    return module


__all__ = ["DevicePrefetcher", "GraphedStep", "compile_module", "configure_cuda", "to_device"]
