"""Shared pieces of the DiffStyleTS tests: tiny widths, fixture upcasting, a tiny judge classifier."""

from __future__ import annotations

import torch

import augframe

# A width small enough to train on the CPU in seconds (GroupNorm groups shrink with it).
TINY = dict(encoder_channels=8, content_dim=16, style_dim=8, model_channels=8, norm_groups=4,
            attention_heads=2, content_pool=4)
CROP = 256  # samples per window in the training tests (about 1 s at 250 Hz)


def float_state(d: dict) -> dict:
    """The fixtures store weights as bf16: upcast floating tensors to the float32 the reference ran with."""
    return {k: (v.float() if v.is_floating_point() else v) for k, v in d["state_dict"].items()}


class TinyJudge(torch.nn.Module):
    """A small conv classifier standing in for the AFib judge in tests (z-scores its input)."""

    class_names = ("N", "A")

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv = torch.nn.Conv1d(1, 4, 9, stride=4)
        self.head = torch.nn.Linear(4, 2)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-8)
        return torch.relu(self.conv(x)).mean(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class _JudgePlugin:
    @staticmethod
    @augframe.hookimpl
    def augframe_register_classifiers(register):
        register("tiny-judge", TinyJudge)


# ---- DDP: one rank of a DiffStyleTS run through augframe.distributed (spawned by launch) ---------
DDP_TRAIN = dict(batch_size=16, lr=2e-3, judge="", ema_decay=0.9, flip_steps=2)


def ddp_setup(windows, mode: str = "improved"):
    """(model, train config, normaliser) of the DDP tests: tiny, dropout 0, seeded init."""
    from augframe_diffstylets.config import ModelConfig, TrainConfig
    from augframe_diffstylets.model import DiffStyleTS
    from augframe_diffstylets.normalise import fit_normaliser
    from augframe.windows import as_windows

    windows = as_windows(windows)
    torch.manual_seed(0)
    model = DiffStyleTS(ModelConfig(signal_length=CROP, fs=250.0, dropout=0.0, **TINY))
    return model, TrainConfig(**DDP_TRAIN), fit_normaliser(windows, mode)


def run_stages(ctx, windows, steps: tuple[int, int], mode: str = "improved"):
    """Stage 1 for steps[0] global steps (2 epochs at most), then stage 2 for steps[1] (judge: TinyJudge)."""
    from augframe.windows import as_windows
    from augframe_diffstylets.stages import train_stage

    windows = as_windows(windows)
    model, cfg, norm = ddp_setup(windows, mode)
    torch.manual_seed(1)
    judge = TinyJudge().eval()
    prog1, opt, ema = train_stage(ctx, model, windows, stage=1, mode=mode, cfg=cfg, normaliser=norm, seed=5,
                                  epochs=2, max_steps=steps[0], log_every=1000)
    prog2, opt, ema = train_stage(ctx, model, windows, stage=2, mode=mode, cfg=cfg, normaliser=norm, seed=5,
                                  epochs=1, max_steps=steps[1], judge=judge, optimizer=opt, ema=ema,
                                  log_every=1000)
    from augframe.distributed import unwrap

    state = {f"model.{k}": v.detach().clone() for k, v in unwrap(model).state_dict().items()}
    if ema is not None:
        state.update({f"ema.{k}": v.detach().clone() for k, v in ema.shadow.items()})
    return state, dict(prog1.last_metrics), dict(prog2.last_metrics)


def ddp_rank(out_dir: str, windows, steps: tuple[int, int], modes: tuple[str, ...]) -> None:
    """One rank: init the gloo group, train both stages per mode; rank 0 saves weights and metrics."""
    from augframe.distributed import init_distributed, shutdown

    ctx = init_distributed("cpu")
    try:
        for mode in modes:
            state, m1, m2 = run_stages(ctx, windows, steps, mode)
            if ctx.is_main:
                torch.save({"state": state, "m1": m1, "m2": m2, "world": ctx.world_size}, f"{out_dir}/{mode}.pt")
    finally:
        shutdown(ctx)
