"""Code that runs inside the processes the distributed tests launch (module level, so spawn can import it).

Training reads 40 real CinC 2017 windows (the shipped demo sample) through the data layer's
memory-mapped window cache, opened lazily in every process. The model is a small 1-D conv denoiser with the layers that matter for equality across world sizes:
convolutions, a strided down-sampling and up-sampling path, BatchNorm (batch statistics must span
ranks) and GroupNorm (per sample, rank-agnostic). The loss is diffusion-like: the noise level and
the noise of each sample come from its per-sample seed, never from torch's global RNG.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from augframe.distributed import TrainPlan, init_distributed, shutdown, train_steps, unwrap, wrap_model
from augframe.seeding import randn
from augframe.signals import ECGBatch
from augframe.training import EMA, TrainLog
from augframe.windows import ArrayWindows
from bench.comm import CommMeter

N, LENGTH, GLOBAL_BATCH = 40, 128, 8  # 5 global steps per epoch
CACHE: dict[str, str] = {}  # {"path": ...} once build_window_cache ran (in this process or the parent)


def build_window_cache(root: Path) -> str:
    """40 real CinC 2017 windows (20 N, 20 A) of the shipped demo, in the data layer's memmap cache."""
    from augframe.data.arrays import ArraySource
    from augframe.data.cache import build_cache
    from augframe.data.demo import demo_windows
    from augframe.data.preprocess import PreprocessConfig

    b = demo_windows(normalise=None)
    sel = np.r_[np.flatnonzero(b.labels == 0)[:N // 2], np.flatnonzero(b.labels == 1)[:N // 2]]
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "windows.npz", X=b.signals[sel], y=b.labels[sel])
    src = ArraySource(root / "windows.npz", fs=b.fs, leads=b.leads, class_names=b.class_names)
    cache = build_cache(src, PreprocessConfig(leads="first", cleaning="none", quality="none"),
                        classes=b.class_names, root=root / "cache")
    CACHE["path"] = str(cache.path)
    return CACHE["path"]


def cache_windows():
    """The memory-mapped windows (a WindowDataset read lazily in every process)."""
    from augframe.data.cache import CacheView, WindowCache

    cache = WindowCache(CACHE["path"])
    return CacheView(cache, np.arange(len(cache)))


def make_data() -> ArrayWindows:
    rng = np.random.default_rng(7)
    t = np.arange(LENGTH) / 125.0
    freq = rng.uniform(0.8, 2.0, size=(N, 1))
    x = np.sin(2 * np.pi * freq * t)[:, None, :] + 0.1 * rng.standard_normal((N, 1, LENGTH))
    labels = (freq[:, 0] > 1.4).astype(np.int64)
    return ArrayWindows(ECGBatch(x.astype(np.float32), 125.0, ("II",), labels=labels, class_names=("N", "A")))


class Denoiser(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.inp = nn.Conv1d(1, width, 7, padding=3, bias=False)  # BatchNorm follows
        self.bn = nn.BatchNorm1d(width)
        self.down = nn.Conv1d(width, 2 * width, 4, stride=2, padding=1)
        self.gn = nn.GroupNorm(4, 2 * width)
        self.up = nn.ConvTranspose1d(2 * width, width, 4, stride=2, padding=1)
        self.out = nn.Conv1d(width, 1, 3, padding=1)
        self.label = nn.Embedding(2, 2 * width)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.silu(self.bn(self.inp(x)))
        h = torch.nn.functional.silu(self.gn(self.down(h)) + self.label(y)[:, :, None])
        return self.out(torch.nn.functional.silu(self.up(h)))


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return Denoiser()


def denoise_loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    x = batch.x
    noise = randn(batch.seeds, tuple(x.shape[1:]), stream=1, device=x.device)
    level = randn(batch.seeds, (1, 1), stream=2, device=x.device).abs() * 0.5
    pred = model(x + level * noise, batch.y)
    loss = torch.nn.functional.mse_loss(pred, noise)
    return loss, {"noise_level": level.mean()}


COMM: dict[str, float] = {}


def train(workdir: Path, max_steps: int, state_path: Path | None, sync_batchnorm: bool = True,
          meter: bool = False) -> dict:
    """Train from scratch (or resume from ``state_path``) to ``max_steps`` global steps; return weights."""
    ctx = init_distributed("cpu")
    model = wrap_model(make_model(), ctx, sync_batchnorm=sync_batchnorm)
    comm = CommMeter().attach(model) if meter else None
    opt = torch.optim.AdamW(unwrap(model).parameters(), lr=3e-3, weight_decay=1e-4)
    ema = EMA(unwrap(model), decay=0.9)
    plan = TrainPlan(global_batch=GLOBAL_BATCH, seed=11, epochs=3, max_steps=max_steps, grad_clip=1.0, log_every=2)
    log = TrainLog(workdir / f"log-{ctx.world_size}.jsonl")
    train_steps(ctx, model, opt, cache_windows(), denoise_loss, plan, ema=ema, state_path=state_path, log=log)
    if comm is not None:
        COMM.update(bytes_per_step=comm.bytes / max_steps, params=sum(p.numel() for p in model.parameters()))
    state = {k: v.detach().clone() for k, v in unwrap(model).state_dict().items()}
    state.update({f"ema.{k}": v.clone() for k, v in ema.shadow.items()})
    return state


def two_rank_training(workdir: str) -> None:
    """Rank job: 3 steps -> checkpoint (kept as mid.pt) -> resume on 2 ranks to 8 steps; then a no-sync-BN run."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = init_distributed("cpu")
    state_path = workdir / "state-2.pt"
    train(workdir, 3, state_path)
    if ctx.is_main:
        shutil.copy(state_path, workdir / "mid.pt")
    final = train(workdir, 8, state_path)
    plain_bn = train(workdir, 3, None, sync_batchnorm=False, meter=True)
    if ctx.is_main:
        torch.save({"final": final, "plain_bn_3": plain_bn, "comm": COMM}, workdir / "two_rank.pt")


def two_rank_all(workdir: str, cache_path: str) -> None:
    """The 2-rank training job (one launch shared by the tests: start-up and imports dominate its cost)."""
    CACHE["path"] = cache_path
    two_rank_training(str(Path(workdir) / "train"))
    shutdown(init_distributed("cpu"))
