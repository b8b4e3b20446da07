"""The ``sssd-ecg`` generator: fit on labelled 12-lead ECGs, sample label-conditioned 12-lead ECGs.

Torch and the network are imported lazily, so building the registry stays cheap.

Training data: an :class:`~augframe.signals.ECGBatch` (multi-hot ``(N, C)`` or class-index labels)
or a :class:`~augframe.windows.WindowDataset` (class indices), at the generator's ``fs`` with
``samples`` per window, containing the 8 independent leads I, II, V1-V6 (12-lead input is fine;
the derived leads are not used). Signals are divided by one global scale (the training RMS, stored
in the checkpoint) so the diffusion sees unit-variance data, and multiplied back on output (mV).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

import augframe
from augframe.errors import CheckpointError, ValidationError, require_choice
from augframe.protocols import Candidates, GenerationRequest, GeneratorInfo
from augframe.signals import STANDARD_LEADS, ECGBatch
from augframe.windows import WindowDataset

from augframe_sssd.leads import INDEPENDENT_LEADS, independent_leads

NAME = "sssd-ecg"
SAMPLERS = ("ancestral", "ddim")
REQUEST_OPTIONS = ("sampler", "steps", "eta", "fs", "leads", "samples")
WEIGHTS_FILE = "sssd-ecg.safetensors"
STATE_FILE = "sssd-ecg-train-state.pt"
LOG_FILE = "sssd-ecg-train-log.jsonl"

#: The paper's architecture and schedule (SSSD-ECG, PTB-XL at 100 Hz).
PAPER = dict(num_layers=36, res_channels=256, skip_channels=256, s4_state=64, label_embed_dim=128,
             fs=100.0, samples=1000, diffusion_steps=200, beta_start=1e-4, beta_end=0.02)


@attrs.frozen
class _Spec:
    """Everything that fixes what a trained model means (stored in its checkpoint)."""

    num_layers: int
    res_channels: int
    skip_channels: int
    s4_state: int
    label_embed_dim: int
    fs: float
    samples: int
    diffusion_steps: int
    beta_start: float
    beta_end: float
    s4_dropout: float = 0.0

    def __attrs_post_init__(self) -> None:
        for field in ("num_layers", "res_channels", "skip_channels", "label_embed_dim", "samples"):
            if int(getattr(self, field)) < 1:
                raise ValidationError(f"sssd-ecg {field}={getattr(self, field)} must be >= 1")
        if self.s4_state < 2 or self.s4_state % 2:
            raise ValidationError(f"sssd-ecg s4_state={self.s4_state} must be an even number >= 2 "
                                  "(S4D keeps s4_state/2 conjugate-pair modes); the paper uses 64")
        if not self.fs > 0:
            raise ValidationError(f"sssd-ecg fs={self.fs} must be a positive sampling rate in Hz")
        if not 0.0 <= self.s4_dropout < 1.0:
            raise ValidationError(f"sssd-ecg s4_dropout={self.s4_dropout} must lie in [0, 1)")
        self.schedule()  # validates steps and betas

    def schedule(self) -> Any:
        """The linear DDPM schedule, kept in float64 (the samplers cast each coefficient to float32)."""
        from augframe.diffusion import NoiseSchedule

        return NoiseSchedule.linear(self.diffusion_steps, self.beta_start, self.beta_end)


class SSSDECGGenerator:
    """SSSD-ECG (Alcaraz & Strodthoff 2023) as an augframe generator serving ``sample`` requests.

    Architecture and schedule arguments default to the paper (``None`` = paper value, or the
    checkpoint's when ``checkpoint`` is given; an explicit value that contradicts the checkpoint
    raises). Training follows the paper: Adam 2e-4, batch 8, 100k iterations (scale these down
    for CPU runs).
    """

    def __init__(
        self, *, num_layers: int | None = None, res_channels: int | None = None,
        skip_channels: int | None = None, s4_state: int | None = None, label_embed_dim: int | None = None,
        fs: float | None = None, samples: int | None = None, diffusion_steps: int | None = None,
        beta_start: float | None = None, beta_end: float | None = None, s4_dropout: float = 0.0,
        sampler: str = "ancestral", ddim_steps: int = 50, ddim_eta: float = 0.0,
        iterations: int = 100_000, batch_size: int = 8, lr: float = 2e-4, ema_decay: float | None = None,
        checkpoint_every: int = 4000, device: str | None = "auto", generate_batch_size: int = 64,
        amp: bool = True, checkpoint: str | None = None, progress: bool | None = None,
    ) -> None:
        given = dict(num_layers=num_layers, res_channels=res_channels, skip_channels=skip_channels,
                     s4_state=s4_state, label_embed_dim=label_embed_dim, fs=fs, samples=samples,
                     diffusion_steps=diffusion_steps, beta_start=beta_start, beta_end=beta_end)
        self.sampler = require_choice("sampler", sampler, SAMPLERS)
        self.ddim_steps, self.ddim_eta = int(ddim_steps), float(ddim_eta)
        self.iterations, self.batch_size, self.lr = int(iterations), int(batch_size), float(lr)
        self.ema_decay, self.checkpoint_every = ema_decay, int(checkpoint_every)
        self.generate_batch_size, self.amp, self.progress = int(generate_batch_size), bool(amp), progress
        for field, value in (("iterations", self.iterations), ("batch_size", self.batch_size),
                             ("generate_batch_size", self.generate_batch_size),
                             ("checkpoint_every", self.checkpoint_every)):
            if value < 1:
                raise ValidationError(f"sssd-ecg {field}={value} must be >= 1")
        from augframe.training import resolve_device

        self.device = resolve_device(device)
        self.model: Any = None
        self.class_names: tuple[str, ...] = ()
        self.signal_scale: float | None = None
        self.checkpoint_sha256: str | None = None
        self.trained_iterations = 0
        if checkpoint is not None:
            self._load(Path(checkpoint), given, s4_dropout)
        else:
            self.spec = _Spec(**{k: (PAPER[k] if v is None else v) for k, v in given.items()}, s4_dropout=s4_dropout)

    # ---- protocol ---------------------------------------------------------------------------
    @property
    def info(self) -> GeneratorInfo:
        params = dict(attrs.asdict(self.spec), sampler=self.sampler, ddim_steps=self.ddim_steps,
                      ddim_eta=self.ddim_eta, class_names=list(self.class_names),
                      signal_scale=self.signal_scale, trained_iterations=self.trained_iterations,
                      independent_leads=list(INDEPENDENT_LEADS))
        return GeneratorInfo(NAME, augframe.__version__, self.checkpoint_sha256, params)

    @property
    def request_kinds(self) -> frozenset[str]:
        return frozenset({"sample"})

    @property
    def leads(self) -> tuple[str, ...]:
        return STANDARD_LEADS

    # ---- model ------------------------------------------------------------------------------
    def _model_config(self) -> Any:
        from augframe_sssd.model import SSSDConfig

        s = self.spec
        return SSSDConfig(in_channels=len(INDEPENDENT_LEADS), res_channels=s.res_channels,
                          skip_channels=s.skip_channels, num_layers=s.num_layers, s4_state=s.s4_state,
                          s4_dropout=s.s4_dropout, num_classes=len(self.class_names),
                          label_embed_dim=s.label_embed_dim, length=s.samples)

    def _schedule(self) -> Any:
        return self.spec.schedule()

    def _build(self, seed: int = 0) -> None:
        """A freshly initialised network; the initialisation is drawn from ``seed`` alone."""
        import torch

        from augframe_sssd.model import SSSDECG

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = SSSDECG(self._model_config()).to(self.device)

    def config(self) -> dict[str, Any]:
        """JSON config stored with the weights: spec, classes, scale, leads, training count."""
        return dict(spec=attrs.asdict(self.spec), class_names=list(self.class_names),
                    signal_scale=self.signal_scale, independent_leads=list(INDEPENDENT_LEADS),
                    output_leads=list(STANDARD_LEADS), trained_iterations=self.trained_iterations,
                    generator=NAME)

    def save(self, path: str | Path) -> str:
        """Write weights + config atomically (safetensors); return the file's SHA-256."""
        from augframe.checkpoint import save_weights

        self._require_model()
        self.checkpoint_sha256 = save_weights(path, self.model.state_dict(), self.config())
        return self.checkpoint_sha256

    def _load(self, path: Path, given: Mapping[str, Any], s4_dropout: float) -> None:
        from augframe.checkpoint import load_into, load_weights, sha256_file

        state, cfg = load_weights(path)
        if cfg.get("generator") != NAME:
            raise CheckpointError(f"checkpoint {str(path)!r} was written by {cfg.get('generator')!r}, not {NAME!r}")
        if tuple(cfg.get("independent_leads", ())) != INDEPENDENT_LEADS:
            raise CheckpointError(f"checkpoint {str(path)!r} models leads {cfg.get('independent_leads')}; "
                                  f"this generator needs {list(INDEPENDENT_LEADS)}")
        spec = dict(cfg["spec"])
        clash = [f"{k}={v!r} (checkpoint: {spec[k]!r})" for k, v in given.items()
                 if v is not None and float(v) != float(spec[k])]
        if clash:
            raise CheckpointError(f"sssd-ecg arguments contradict checkpoint {str(path)!r}: {', '.join(clash)}; "
                                  "leave them out to use the checkpoint's values")
        spec["s4_dropout"] = s4_dropout
        self.spec = _Spec(**spec)
        self.class_names = tuple(cfg["class_names"])
        self.signal_scale = float(cfg["signal_scale"])
        self.trained_iterations = int(cfg.get("trained_iterations", 0))
        self._build()
        load_into(self.model, state, what=f"sssd-ecg checkpoint {path}")
        self.checkpoint_sha256 = sha256_file(path)

    def _require_model(self) -> None:
        if self.model is None:
            raise ValidationError("sssd-ecg has no trained model: call fit(train) first or pass checkpoint=PATH")

    # ---- data checks ------------------------------------------------------------------------
    def _check_signal_format(self, fs: float, leads: Sequence[str], samples: int, what: str) -> list[int]:
        if float(fs) != float(self.spec.fs):
            raise ValidationError(f"{what} is sampled at {float(fs):g} Hz; this SSSD-ECG model works at "
                                  f"{self.spec.fs:g} Hz: resample to {self.spec.fs:g} Hz first")
        if int(samples) != int(self.spec.samples):
            raise ValidationError(f"{what} has {samples} samples per ECG; this SSSD-ECG model uses "
                                  f"{self.spec.samples} ({self.spec.samples / self.spec.fs:g} s at {self.spec.fs:g} Hz)")
        return independent_leads(tuple(leads), what)

    def label_matrix(self, labels: np.ndarray, what: str) -> np.ndarray:
        """Class indices ``(N,)`` or multi-hot ``(N, C)`` -> float32 ``(N, C)`` for the model's classes."""
        c = len(self.class_names)
        labels = np.asarray(labels)
        expected = f"{c} classes ({', '.join(self.class_names[:8])}{', ...' if c > 8 else ''})"
        if labels.ndim == 1:
            bad = labels[(labels < 0) | (labels >= c)]
            if len(bad):
                raise ValidationError(f"{what} holds class index {int(bad[0])}; this SSSD-ECG model has {expected}: "
                                      f"use indices 0..{c - 1} (unlabelled -1 cannot be generated or trained on)")
            return np.eye(c, dtype=np.float32)[labels.astype(np.int64)]
        if labels.ndim == 2:
            if labels.shape[1] != c:
                raise ValidationError(f"{what} is a multi-hot matrix of width {labels.shape[1]}; this SSSD-ECG "
                                      f"model was trained on {expected}: pass (N, {c}) rows or class indices")
            if not np.isfinite(labels).all() or labels.min(initial=0) < 0 or labels.max(initial=0) > 1:
                raise ValidationError(f"{what} multi-hot entries must lie in [0, 1]")
            return labels.astype(np.float32)
        raise ValidationError(f"{what} must be class indices (N,) or multi-hot (N, {c}); got shape {labels.shape}")

    # ---- training ---------------------------------------------------------------------------
    def fit(self, train: Any, *, seed: int = 0, workdir: Path | None = None) -> dict[str, Any]:
        """Train (or resume training in ``workdir``) for ``iterations`` steps; returns the log summary."""
        from augframe_sssd.train import train_model

        data = _TrainSet.of(train)
        pos = self._check_signal_format(data.fs, data.leads, data.samples, "training data")
        if self.model is None:
            self.class_names = data.class_names
        elif data.class_names != self.class_names:
            raise ValidationError(f"training data classes {list(data.class_names)} differ from the loaded "
                                  f"model's {list(self.class_names)}")
        if not self.class_names:
            raise ValidationError("training data has no class_names; SSSD-ECG is label-conditioned and needs them")
        data.bind(pos, self)
        if self.signal_scale is None:
            self.signal_scale = data.rms(seed)
        if self.model is None:
            self._build(seed)
        summary = train_model(self, data, seed=seed, workdir=None if workdir is None else Path(workdir))
        if workdir is not None:
            self.save(Path(workdir) / WEIGHTS_FILE)
        return summary

    # ---- generation -------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Candidates:
        import torch

        from augframe.training import autocast
        from augframe_sssd.diffusion import sample_ancestral, sample_ddim
        from augframe_sssd.leads import to_twelve_leads

        self._require_model()
        if request.kind not in self.request_kinds:
            raise ValidationError(f"sssd-ecg serves {sorted(self.request_kinds)} requests, not {request.kind!r}")
        opts = dict(request.options)
        unknown = sorted(set(opts) - set(REQUEST_OPTIONS))
        if unknown:
            raise ValidationError(f"sssd-ecg request options {unknown} are unknown; valid: {list(REQUEST_OPTIONS)}")
        if request.class_names and tuple(request.class_names) != self.class_names:
            raise ValidationError(f"request class_names {list(request.class_names)} differ from the model's "
                                  f"{list(self.class_names)}")
        self._check_signal_format(opts.get("fs", self.spec.fs), STANDARD_LEADS,
                                  opts.get("samples", self.spec.samples), "the request")
        out_leads = _requested_leads(opts.get("leads"))
        sampler = require_choice("sampler", opts.get("sampler", self.sampler), SAMPLERS)
        steps, eta = int(opts.get("steps", self.ddim_steps)), float(opts.get("eta", self.ddim_eta))
        y = self.label_matrix(request.labels, "request labels")
        schedule = self._schedule()
        shape = (len(INDEPENDENT_LEADS), self.spec.samples)
        self.model.eval()
        chunks = []
        with self.model.frozen_kernels(self.spec.samples), autocast(self.device, enabled=self.amp):
            for start in range(0, len(y), self.generate_batch_size):
                part = slice(start, start + self.generate_batch_size)
                labels = torch.from_numpy(y[part]).to(self.device)
                seeds = request.seeds[part]
                if sampler == "ancestral":
                    x = sample_ancestral(self.model, labels, seeds, shape, schedule)
                else:
                    x = sample_ddim(self.model, labels, seeds, shape, schedule, steps=steps, eta=eta)
                chunks.append(to_twelve_leads(x.float() * self.signal_scale))
        x12 = torch.cat(chunks).cpu().numpy() if chunks else np.zeros((0, 12, self.spec.samples), np.float32)
        keep = [STANDARD_LEADS.index(name) for name in out_leads]
        ids = [f"{NAME}-{int(s)}" for s in request.seeds]
        labels_out = request.labels if request.labels.ndim == 2 else request.labels.astype(np.int64)
        batch = ECGBatch(x12[:, keep], self.spec.fs, out_leads, labels=labels_out, class_names=self.class_names,
                         ids=ids, units="mV")
        info = self.info
        info = attrs.evolve(info, params=dict(info.params, sampler=sampler,
                                              steps=self.spec.diffusion_steps if sampler == "ancestral" else steps,
                                              eta=eta if sampler == "ddim" else 1.0))
        return Candidates(batch, request.seeds, info)


def _requested_leads(leads: Sequence[str] | None) -> tuple[str, ...]:
    if leads is None:
        return STANDARD_LEADS
    from augframe.signals import canonical_lead

    if isinstance(leads, str):
        leads = [leads]
    names = tuple(canonical_lead(n) for n in leads)
    if not names or len(set(names)) != len(names):
        raise ValidationError(f"request option leads={list(leads)} must name distinct leads of {list(STANDARD_LEADS)}")
    return names


class _TrainSet:
    """Training windows as (8 independent leads, label row) batches, from an ECGBatch or a WindowDataset."""

    def __init__(self, source: Any, fs: float, leads: tuple[str, ...], samples: int,
                 class_names: tuple[str, ...], labels: np.ndarray) -> None:
        self.source, self.fs, self.leads, self.samples = source, fs, leads, samples
        self.class_names, self.raw_labels = class_names, labels
        self.positions: list[int] = []
        self.labels: np.ndarray | None = None

    @classmethod
    def of(cls, train: Any) -> _TrainSet:
        if isinstance(train, ECGBatch):
            if train.labels is None:
                raise ValidationError("training batch has no labels; SSSD-ECG is label-conditioned")
            return cls(train.to_numpy().signals, train.fs, train.leads, train.n_samples, train.class_names, train.labels)
        if isinstance(train, WindowDataset):
            if len(train) == 0:
                raise ValidationError("training data is empty")
            samples = int(np.asarray(train[0][0]).shape[-1])
            return cls(train, train.fs, tuple(train.leads), samples, tuple(train.class_names), np.asarray(train.labels))
        raise ValidationError(f"sssd-ecg trains on an ECGBatch or a WindowDataset, not {type(train).__name__}")

    def bind(self, positions: list[int], gen: SSSDECGGenerator) -> None:
        self.positions = positions
        self.labels = gen.label_matrix(self.raw_labels, "training labels")

    def __len__(self) -> int:
        return len(self.raw_labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """One window's independent leads and its label row (the training loop's item)."""
        return self.signals(np.array([int(i)]))[0], self.labels[int(i)]

    def signals(self, idx: np.ndarray) -> np.ndarray:
        if isinstance(self.source, np.ndarray):
            return self.source[idx][:, self.positions]
        return np.stack([np.asarray(self.source[int(i)][0], np.float32)[self.positions] for i in idx])

    def rms(self, seed: int, limit: int = 2048) -> float:
        """Global RMS of the independent leads over up to ``limit`` windows (seeded choice)."""
        from augframe.seeding import Stream, numpy_rng

        n = len(self)
        idx = np.sort(numpy_rng(seed, Stream.SSSD_RMS).choice(n, size=min(n, limit), replace=False))
        value = float(np.sqrt(np.mean(np.square(self.signals(idx), dtype=np.float64))))
        if not math.isfinite(value) or value <= 0:
            raise ValidationError("training signals are all zero (or not finite); cannot scale them")
        return value


def paper_parameter_count(num_classes: int = 71) -> int:
    """Parameters of the paper configuration (36 layers, 256 channels, S4 state 64, 71 labels)."""
    from augframe_sssd.model import SSSDConfig, SSSDECG, count_parameters

    return count_parameters(SSSDECG(SSSDConfig(num_classes=num_classes)))


