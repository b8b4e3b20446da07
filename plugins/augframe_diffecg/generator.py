"""DiffECGGenerator: the augframe generator behind the "diffecg" name.

One trained model serves ``sample`` requests (generation: nothing known, class-conditional) and
``complete`` requests (imputation and forecasting: the request's mask says what is known).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import augframe
from augframe.checkpoint import sha256_file
from augframe.errors import CheckpointError, ValidationError
from augframe.protocols import Candidates, GenerationRequest, GeneratorInfo
from augframe.seeding import derive_seeds
from augframe.signals import ECGBatch
from augframe.windows import as_windows

from augframe_diffecg import checkpoint_io
from augframe_diffecg.config import DiffECGConfig
from augframe_diffecg.sampler import ddim_sample
from augframe_diffecg.train import TrainSettings, train

CHECKPOINT_NAME = "diffecg.safetensors"
CALL_OPTIONS = ("steps", "eta", "guidance", "draws", "aggregate")
AGGREGATES = ("median", "mean")


def draw_seeds(seeds: np.ndarray, draws: int) -> np.ndarray:
    """Per-draw seeds ``[len(seeds) * draws]``, draw-major within each sample.

    Draw 0 of sample i uses ``seeds[i]`` itself (so ``draws=1`` is exactly the single-sample
    output); draws 1.. use :func:`augframe.seeding.derive_seeds` of ``seeds[i]``, so every draw
    depends only on its sample's seed, never on the batch or on the other samples.
    """
    seeds = np.asarray(seeds, dtype=np.int64)
    if draws == 1:
        return seeds
    extra = np.stack([derive_seeds(int(s), draws - 1, offset=1) for s in seeds]) if len(seeds) else \
        np.zeros((0, draws - 1), dtype=np.int64)
    return np.concatenate([seeds[:, None], extra], axis=1).reshape(-1)


class DiffECGGenerator:
    """Conditional DDPM (T=1000, linear betas, eps-prediction) with DDIM sampling and masks."""

    def __init__(self, checkpoint: str | None = None, *, width: int = 32, mults: Sequence[int] = (1, 2, 2, 4),
                 blocks: int = 1, cond: str = "stft", n_fft: int = 64, hop: int | None = None,
                 attention: bool = True, prior: str = "none", period: int = 0, steps: int = 50,
                 eta: float = 0.0, guidance: float = 1.0,
                 clip_x0: float | None = 6.0, draws: int = 1, aggregate: str = "median", batch_size: int = 64,
                 device: str = "cpu", train_steps: int = 2000, train_batch_size: int = 16, lr: float = 1e-3,
                 warmup_steps: int = 0, lr_schedule: str = "constant", ema_decay: float = 0.999,
                 p_uncond: float = 0.1, crop: int | None = None, time_budget_s: float | None = None,
                 progress: bool = False) -> None:
        self.arch = dict(width=int(width), mults=tuple(int(m) for m in mults), blocks=int(blocks), cond=cond,
                         n_fft=int(n_fft), hop=int(hop if hop is not None else max(1, n_fft // 4)),
                         attention=bool(attention), prior=str(prior), period=int(period))
        DiffECGConfig(**self.arch)  # validate the architecture now, not after loading data
        self.steps, self.eta, self.guidance, self.clip_x0 = int(steps), float(eta), float(guidance), clip_x0
        self._check_sampling(self.steps, self.eta, self.guidance)
        self.draws, self.aggregate = self._check_draws(draws, aggregate)
        if batch_size < 1:
            raise ValidationError(f"diffecg batch_size={batch_size} must be >= 1")
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.settings = TrainSettings(steps=train_steps, batch_size=train_batch_size, lr=lr, warmup_steps=warmup_steps,
                                      lr_schedule=lr_schedule, ema_decay=ema_decay, p_uncond=p_uncond, crop=crop,
                                      time_budget_s=time_budget_s)
        self.progress = progress
        self.model: torch.nn.Module | None = None
        self.config: DiffECGConfig | None = None
        self.checkpoint_sha256: str | None = None
        self.train_log: list[dict] = []
        if checkpoint is not None:
            self.load(checkpoint)

    # ---- protocol ---------------------------------------------------------------------------
    @property
    def info(self) -> GeneratorInfo:
        params = {**self.arch, "steps": self.steps, "eta": self.eta, "guidance": self.guidance,
                  "clip_x0": self.clip_x0, "draws": self.draws, "aggregate": self.aggregate, "ddim_spacing": "linspace T-1..0", "known_part": "replaced every step"}
        if self.config is not None:
            params.update(length=self.config.length, fs=self.config.fs, leads=list(self.config.leads),
                          class_names=list(self.config.class_names))
        return GeneratorInfo("diffecg", augframe.__version__, self.checkpoint_sha256, params)

    @property
    def request_kinds(self) -> frozenset[str]:
        return frozenset({"sample", "complete"})

    def fit(self, train_data: Any, *, seed: int = 0, workdir: Path | None = None) -> dict[str, Any]:
        """Train on an ECGBatch or WindowDataset of fixed-length windows (or beats)."""
        data = as_windows(train_data)
        if len(data) == 0:
            raise ValidationError("diffecg fit got an empty training set")
        length = int(np.asarray(data[0][0]).shape[-1])
        labels = np.asarray(data.labels, dtype=np.int64)
        rng = np.random.default_rng(seed)
        probe = rng.choice(len(data), size=min(len(data), 512), replace=False)
        scale = float(np.std(np.stack([np.asarray(data[int(i)][0]) for i in probe])))
        self.config = DiffECGConfig(n_leads=len(data.leads), leads=data.leads, class_names=data.class_names,
                                    length=length, fs=float(data.fs), scale=max(scale, 1e-6), **self.arch)
        torch.manual_seed(seed)  # weight initialisation
        model = self.config.build()
        ema, self.train_log = train(model, self.config.schedule(), data, labels, self.config.n_classes,
                                    self.config.scale, self.settings, seed=seed, device=self.device,
                                    workdir=workdir, progress=self.progress, prior=self.config.prior,
                                    period=self.config.period)
        self.model = ema.to(self.device).eval()
        self.checkpoint_sha256 = None
        if workdir is not None:
            self.save(Path(workdir) / CHECKPOINT_NAME)
        return {"log": self.train_log, "config": self.config.to_dict()}

    def generate(self, request: GenerationRequest) -> Candidates:
        model, cfg = self._ready()
        if request.kind not in self.request_kinds:
            raise ValidationError(f"diffecg serves {sorted(self.request_kinds)} requests, not {request.kind!r}")
        steps, eta, guidance, draws, aggregate = self._call_options(request.options)
        labels = self._labels(request)
        n = len(request)
        if request.kind == "sample":
            if "draws" in request.options and draws > 1:
                raise ValidationError(
                    f"diffecg draws={draws} asks for a point estimate (the {aggregate} of several draws), which only "
                    "completion requests have; a 'sample' request returns one draw per ECG (drop the draws option)"
                )
            draws = 1  # the generator-level default applies to completion only
            known = np.zeros((n, cfg.n_leads, cfg.length), dtype=np.float32)
            mask = np.zeros_like(known, dtype=bool)
            template = None
        else:
            known, mask, template = self._check_complete(request)
        seeds = draw_seeds(request.seeds, draws)  # [n * draws]: draw k of sample i is row i * draws + k
        out = self._sample_rows(model, cfg, np.repeat(known, draws, axis=0), np.repeat(mask, draws, axis=0),
                                np.repeat(labels, draws), seeds, steps, eta, guidance)
        if draws > 1:
            out = out.reshape(n, draws, *out.shape[1:])
            out = np.median(out, axis=1) if aggregate == "median" else out.mean(axis=1)
        out = np.where(mask, known, out).astype(np.float32)  # known samples bit-exact
        point = "single draw" if draws == 1 else f"{aggregate} of {draws} draws"
        batch = ECGBatch(out, cfg.fs, cfg.leads, labels=np.where(labels >= 0, labels, -1),
                         class_names=cfg.class_names,
                         ids=None if template is None else [f"{i}:diffecg" for i in template.ids],
                         meta={"known_fraction": mask.reshape(n, -1).mean(axis=1), "draws": np.full(n, draws),
                               "point_estimate": np.array([point] * n)},
                         units="mV" if template is None else template.units)  # the known part's units
        return Candidates(batch, request.seeds, self.info,
                          source_ids=None if template is None else tuple(template.ids))

    def _sample_rows(self, model: torch.nn.Module, cfg: DiffECGConfig, known: np.ndarray, mask: np.ndarray,
                     labels: np.ndarray, seeds: np.ndarray, steps: int, eta: float, guidance: float) -> np.ndarray:
        """DDIM over rows in chunks of ``batch_size`` (draws are rows like any other)."""
        out = np.empty_like(known)
        for lo in range(0, len(known), self.batch_size):
            sl = slice(lo, lo + self.batch_size)
            k = torch.from_numpy(known[sl] / cfg.scale).to(self.device)
            m = torch.from_numpy(mask[sl]).to(self.device)
            y = torch.from_numpy(labels[sl]).to(self.device)
            x = ddim_sample(model, cfg.schedule(), k, m, y, seeds[sl], steps=steps, eta=eta,
                            guidance=guidance, clip_x0=self.clip_x0, prior=cfg.prior,
                            period=cfg.period)
            out[sl] = x.float().cpu().numpy() * cfg.scale
        return out

    # ---- checkpoints ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        model, cfg = self._ready()
        self.checkpoint_sha256 = checkpoint_io.save(path, model, cfg, extra={"train_log_tail": self.train_log[-5:]})
        return Path(path)

    def load(self, path: str | Path) -> None:
        model, cfg, _ = checkpoint_io.load(path, self.device)
        arch = {k: getattr(cfg, k) for k in self.arch}
        self.arch = arch
        self.model, self.config = model, cfg
        self.checkpoint_sha256 = sha256_file(path)

    # ---- checks -----------------------------------------------------------------------------
    def _ready(self) -> tuple[torch.nn.Module, DiffECGConfig]:
        if self.model is None or self.config is None:
            raise CheckpointError("diffecg has no trained model: pass checkpoint=PATH or call fit() first")
        return self.model, self.config

    @staticmethod
    def _check_sampling(steps: int, eta: float, guidance: float) -> None:
        if not 1 <= steps <= 1000:
            raise ValidationError(f"diffecg steps={steps}: DDIM steps must lie in 1..1000")
        if eta < 0:
            raise ValidationError(f"diffecg eta={eta} must be >= 0 (0 = deterministic DDIM)")
        if guidance < 0:
            raise ValidationError(f"diffecg guidance={guidance} must be >= 0 (1 = no guidance)")

    @staticmethod
    def _check_draws(draws: int, aggregate: str) -> tuple[int, str]:
        if int(draws) != draws or not 1 <= int(draws) <= 1024:
            raise ValidationError(f"diffecg draws={draws} must be an integer in 1..1024 (1 = a single sample)")
        if aggregate not in AGGREGATES:
            raise ValidationError(f"diffecg aggregate={aggregate!r}; use one of {AGGREGATES} "
                                  "(median minimises MAE, mean minimises RMSE)")
        return int(draws), str(aggregate)

    def _call_options(self, options: Any) -> tuple[int, float, float, int, str]:
        unknown = sorted(set(options) - set(CALL_OPTIONS))
        if unknown:
            raise ValidationError(f"diffecg request options {unknown} are not understood; use {CALL_OPTIONS}")
        steps = int(options.get("steps", self.steps))
        eta = float(options.get("eta", self.eta))
        guidance = float(options.get("guidance", self.guidance))
        self._check_sampling(steps, eta, guidance)
        draws, aggregate = self._check_draws(options.get("draws", self.draws), options.get("aggregate", self.aggregate))
        return steps, eta, guidance, draws, aggregate

    def _labels(self, request: GenerationRequest) -> np.ndarray:
        cfg = self.config
        labels = np.asarray(request.labels)
        if labels.ndim != 1:
            raise ValidationError("diffecg is conditioned on one class per ECG; give class indices, not multi-hot rows")
        if request.class_names and cfg.class_names and tuple(request.class_names) != tuple(cfg.class_names):
            raise ValidationError(
                f"request class_names {tuple(request.class_names)} differ from the model's {cfg.class_names}"
            )
        if labels.size and (labels.max() >= cfg.n_classes or labels.min() < -1):
            raise ValidationError(f"labels must be -1 (none) or class indices 0..{cfg.n_classes - 1}")
        return labels.astype(np.int64)

    def _check_complete(self, request: GenerationRequest) -> tuple[np.ndarray, np.ndarray, ECGBatch]:
        cfg = self.config
        src = request.sources
        if abs(src.fs - cfg.fs) > 1e-6:
            raise ValidationError(f"known ECGs are at {src.fs:g} Hz; this model was trained at {cfg.fs:g} Hz (resample first)")
        if tuple(src.leads) != tuple(cfg.leads):
            raise ValidationError(f"known ECGs have leads {src.leads}; the model expects {cfg.leads} in that order")
        known = np.ascontiguousarray(src.numpy(), dtype=np.float32)
        mask = np.asarray(request.mask)
        if mask.shape != known.shape:
            raise ValidationError(f"mask shape {mask.shape} must equal the known signals' shape {known.shape}")
        if known.shape[-1] != cfg.length:
            raise ValidationError(
                f"known ECGs have {known.shape[-1]} samples; this model works on {cfg.length}-sample windows"
            )
        full = np.flatnonzero(mask.reshape(len(mask), -1).all(axis=1))
        if len(full):
            raise ValidationError(
                f"mask marks every sample as known for request entries {full[:10].tolist()}: nothing to impute or "
                "forecast; set mask False where the signal is missing"
            )
        return known, mask.astype(bool), src
