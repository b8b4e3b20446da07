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

from augframe.checkpoint import sha256_file
from augframe.errors import CheckpointError, ValidationError
from augframe.protocols import Candidates, GenerationRequest, GeneratorInfo
from augframe.signals import ECGBatch
from augframe.windows import as_windows

from augframe_diffecg import checkpoint_io
from augframe_diffecg.config import DiffECGConfig
from augframe_diffecg.sampler import ddim_sample
from augframe_diffecg.train import TrainSettings, train

CHECKPOINT_NAME = "diffecg.safetensors"
CALL_OPTIONS = ("steps", "eta", "guidance")


def _version() -> str:
    try:
        import importlib.metadata as md

        return md.version("augframe")
    except Exception:  # not installed as a distribution (e.g. a source checkout)
        return "0"


class DiffECGGenerator:
    """Conditional DDPM (T=1000, linear betas, eps-prediction) with DDIM sampling and masks."""

    def __init__(self, checkpoint: str | None = None, *, width: int = 32, mults: Sequence[int] = (1, 2, 2, 4),
                 blocks: int = 1, cond: str = "stft", n_fft: int = 64, hop: int | None = None,
                 attention: bool = True, steps: int = 50, eta: float = 0.0, guidance: float = 1.0,
                 clip_x0: float | None = 6.0, batch_size: int = 64, device: str = "cpu",
                 train_steps: int = 2000, train_batch_size: int = 16, lr: float = 1e-3, ema_decay: float = 0.999,
                 p_uncond: float = 0.1, crop: int | None = None, time_budget_s: float | None = None,
                 progress: bool = False) -> None:
        self.arch = dict(width=int(width), mults=tuple(int(m) for m in mults), blocks=int(blocks), cond=cond,
                         n_fft=int(n_fft), hop=int(hop if hop is not None else max(1, n_fft // 4)),
                         attention=bool(attention))
        DiffECGConfig(**self.arch)  # validate the architecture now, not after loading data
        self.steps, self.eta, self.guidance, self.clip_x0 = int(steps), float(eta), float(guidance), clip_x0
        self._check_sampling(self.steps, self.eta, self.guidance)
        if batch_size < 1:
            raise ValidationError(f"diffecg batch_size={batch_size} must be >= 1")
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.settings = TrainSettings(steps=train_steps, batch_size=train_batch_size, lr=lr, ema_decay=ema_decay,
                                      p_uncond=p_uncond, crop=crop, time_budget_s=time_budget_s)
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
                  "clip_x0": self.clip_x0, "ddim_spacing": "linspace T-1..0", "known_part": "replaced every step"}
        if self.config is not None:
            params.update(length=self.config.length, fs=self.config.fs, leads=list(self.config.leads),
                          class_names=list(self.config.class_names))
        return GeneratorInfo("diffecg", _version(), self.checkpoint_sha256, params)

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
                                    workdir=workdir, progress=self.progress)
        self.model = ema.to(self.device).eval()
        self.checkpoint_sha256 = None
        if workdir is not None:
            self.save(Path(workdir) / CHECKPOINT_NAME)
        return {"log": self.train_log, "config": self.config.to_dict()}

    def generate(self, request: GenerationRequest) -> Candidates:
        model, cfg = self._ready()
        if request.kind not in self.request_kinds:
            raise ValidationError(f"diffecg serves {sorted(self.request_kinds)} requests, not {request.kind!r}")
        steps, eta, guidance = self._call_options(request.options)
        labels = self._labels(request)
        n = len(request)
        if request.kind == "sample":
            known = np.zeros((n, cfg.n_leads, cfg.length), dtype=np.float32)
            mask = np.zeros_like(known, dtype=bool)
            template = None
        else:
            known, mask, template = self._check_complete(request)
        out = np.empty_like(known)
        for lo in range(0, n, self.batch_size):
            sl = slice(lo, lo + self.batch_size)
            k = torch.from_numpy(known[sl] / cfg.scale).to(self.device)
            m = torch.from_numpy(mask[sl]).to(self.device)
            y = torch.from_numpy(labels[sl]).to(self.device)
            x = ddim_sample(model, cfg.schedule(), k, m, y, request.seeds[sl], steps=steps, eta=eta,
                            guidance=guidance, clip_x0=self.clip_x0)
            out[sl] = x.float().cpu().numpy() * cfg.scale
        out = np.where(mask, known, out).astype(np.float32)  # known samples bit-exact
        batch = ECGBatch(out, cfg.fs, cfg.leads, labels=np.where(labels >= 0, labels, -1),
                         class_names=cfg.class_names,
                         ids=None if template is None else [f"{i}:diffecg" for i in template.ids],
                         meta={"known_fraction": mask.reshape(n, -1).mean(axis=1)})
        return Candidates(batch, request.seeds, self.info,
                          source_ids=None if template is None else tuple(template.ids))

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

    def _call_options(self, options: Any) -> tuple[int, float, float]:
        unknown = sorted(set(options) - set(CALL_OPTIONS))
        if unknown:
            raise ValidationError(f"diffecg request options {unknown} are not understood; use {CALL_OPTIONS}")
        steps = int(options.get("steps", self.steps))
        eta = float(options.get("eta", self.eta))
        guidance = float(options.get("guidance", self.guidance))
        self._check_sampling(steps, eta, guidance)
        return steps, eta, guidance

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
