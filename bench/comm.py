"""What DDP all-reduces per step, counted with a comm hook (for bench/scale.py and its test)."""

from __future__ import annotations

from typing import Any

from augframe.errors import ValidationError


class CommMeter:
    """Counts what DDP all-reduces: gradient bytes per step (payload; a ring all-reduce puts about
    ``2 (W-1)/W`` times that on each rank's link). Attach with :meth:`attach` before training."""

    def __init__(self) -> None:
        self.bytes = 0
        self.buckets = 0

    def attach(self, model: Any) -> CommMeter:
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
        from torch.nn.parallel import DistributedDataParallel as DDP

        if not isinstance(model, DDP):
            raise ValidationError("CommMeter.attach needs the DDP-wrapped model that wrap_model returns on >1 rank")

        def hook(state, bucket):  # type: ignore[no-untyped-def]  # DDP rejects non-GradBucket annotations
            buf = bucket.buffer()
            self.bytes += buf.numel() * buf.element_size()
            self.buckets += 1
            return allreduce_hook(None, bucket)

        model.register_comm_hook(None, hook)
        return self

    def reset(self) -> None:
        self.bytes = self.buckets = 0
