"""The DiffStyleTS pipeline: the registered generator, a composition of model, sampler and banks.

A transfer runs: sources -> the model's scale (normaliser, length policy) -> re-timed to a real
target-class rhythm with its atrial activity (``augframe.retime``; improved mode) -> content and style
codes (:mod:`model`, :mod:`styles`) -> SDEdit (:class:`sampler.Sampler`) -> beat check -> the sources'
scale. The networks come from a checkpoint (:mod:`checkpoints`) or from :meth:`fit` (:mod:`train`).

``generate`` is cheap to call again with new seeds: the networks, the schedule and the style bank stay
on the device, every call is micro-batched under ``torch.inference_mode`` and each sample's noise
comes from its own seed, so a pipeline asking "until N accepted" can call it repeatedly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

import augframe
from augframe.beats import unplaced_beats
from augframe.diffusion import NoiseSchedule
from augframe.errors import PluginError, ValidationError, require_choice, suggest
from augframe.judges import JudgeRef, judge_ref
from augframe.protocols import Candidates, GenerationRequest, GeneratorInfo
from augframe.retime import TOO_FEW_BEATS, RetimeConfig, RhythmBank, extend_beats, qrs_mask, retime, source_beats
from augframe.signals import ECGBatch
from augframe.training import autocast, resolve_device
from augframe.windows import as_windows
from augframe_diffstylets import checkpoints, styles
from augframe_diffstylets.config import (
    LENGTH_POLICIES, PRECISIONS, STYLE_SOURCES, ModelConfig, SamplerConfig, TrainConfig, check_mode,
    from_mapping, to_dict,
)
from augframe_diffstylets.model import DiffStyleTS
from augframe_diffstylets.normalise import Normaliser, fit_normaliser
from augframe_diffstylets.sampler import Sampler

NAME = "diffstylets"
CHECKPOINT_FILE = "diffstylets.safetensors"
DREW_A_BEAT = ("the diffusion model drew QRS-like activity where the target rhythm placed no beat: the output's "
               "rhythm is not the target's")
REFERENCE_CLASSES = ("N", "A")  # the reference's label 0 = sinus rhythm, 1 = AFib


def resample_length(x: torch.Tensor, n: int) -> torch.Tensor:
    """FFT resampling of ``x [..., L]`` to ``n`` samples on its device (scipy.signal.resample's method)."""
    m = x.shape[-1]
    if m == n:
        return x
    spec = torch.fft.rfft(x.float(), dim=-1)
    keep = min(spec.shape[-1], n // 2 + 1)
    out = torch.zeros(*spec.shape[:-1], n // 2 + 1, dtype=spec.dtype, device=x.device)
    out[..., :keep] = spec[..., :keep]
    return torch.fft.irfft(out, n=n, dim=-1) * (n / m)


class DiffStyleTSGenerator:
    """DiffStyleTS as an augframe generator (see docs/diffstylets.md for every parameter)."""

    @staticmethod
    def validate_params(params: Mapping[str, Any], registry: Any = None) -> None:
        """The nested model / sampler / train tables' keys, checked before anything is built."""
        for key, cls in (("model", ModelConfig), ("sampler", SamplerConfig), ("train", TrainConfig)):
            from_mapping(cls, params.get(key), f"diffstylets {key}")

    def __init__(self, mode: str = "improved", checkpoint: str | None = None, device: str = "auto",
                 style_source: str = "self", length_policy: str = "reject", precision: str = "auto",
                 compile: bool = False, micro_batch: int = 32, bank_per_class: int = 256,
                 model: Mapping[str, Any] | None = None,
                 sampler: Mapping[str, Any] | None = None, train: Mapping[str, Any] | None = None,
                 registry: Any = None) -> None:
        self.registry = registry  # where the stage-2 judge comes from (default: Registry.discover())
        self.mode = check_mode(mode)
        self.style_source = require_choice("style_source", style_source, STYLE_SOURCES)
        self.length_policy = require_choice("length_policy", length_policy, LENGTH_POLICIES)
        self.precision = require_choice("precision", precision, PRECISIONS)
        self.compile = bool(compile)
        if micro_batch < 1:
            raise ValidationError(f"micro_batch={micro_batch} must be >= 1")
        self.device = resolve_device(device)
        self.micro_batch, self.bank_per_class = int(micro_batch), int(bank_per_class)
        self.sampler_cfg = from_mapping(SamplerConfig, sampler, "diffstylets sampler")
        self.train_cfg = from_mapping(TrainConfig, train, "diffstylets train")
        self.model_cfg = from_mapping(ModelConfig, model, "diffstylets model")
        self.schedule = NoiseSchedule.cosine()
        self.model: DiffStyleTS | None = None
        self.normaliser = Normaliser()
        self.class_names: tuple[str, ...] = ()
        self.leads: tuple[str, ...] = ("II",)
        self.units = "mV"
        self.style_bank: styles.StyleBank | None = None
        self.rhythm_bank: RhythmBank | None = None
        self.retime_cfg = RetimeConfig()
        self.trained_against: tuple[JudgeRef, ...] | None = None  # None: unknown (older checkpoints)
        self.checkpoint_sha256: str | None = None
        self.checkpoint_layout: str | None = None
        self._bf16_unet: torch.nn.Module | None = None
        self._bf16_source: torch.nn.Module | None = None
        self._compiled: tuple[Any, Any] | None = None  # (source module, compiled module)
        if checkpoint is not None:
            self.load(checkpoint, model_given=model is not None)

    # ---- protocol ------------------------------------------------------------------------------
    @property
    def info(self) -> GeneratorInfo:
        params = {
            "mode": self.mode, "style_source": self.style_source, "length_policy": self.length_policy,
            "precision": self.precision, "compile": self.compile, "device": self.device, "sampler": to_dict(self.sampler_cfg),
            "model": to_dict(self.model.cfg if self.model is not None else self.model_cfg),
            "normaliser": self.normaliser.to_dict(), "class_names": list(self.class_names),
            "checkpoint_layout": self.checkpoint_layout,
        }
        return GeneratorInfo(NAME, augframe.__version__, self.checkpoint_sha256, json.loads(json.dumps(params)),
                             trained_against=self.trained_against)

    @property
    def request_kinds(self) -> frozenset[str]:
        return frozenset({"transfer", "sample"})

    # ---- weights -------------------------------------------------------------------------------
    def load(self, path: str | Path, model_given: bool = False) -> None:
        """Load our safetensors checkpoint or the reference's .pt layout (no renaming needed)."""
        loaded = checkpoints.load(path)
        self.model = checkpoints.load_model(loaded, self.model_cfg if model_given else None).to(self.device).eval()
        self._drop_derived()
        self.model_cfg = self.model.cfg
        self.normaliser = loaded.normaliser or Normaliser()
        self.class_names = loaded.class_names or (REFERENCE_CLASSES if loaded.model_cfg.num_classes == 2 else ())
        self.leads = loaded.leads
        self.units = loaded.units
        self.style_bank = None if loaded.style_bank is None else tuple(t.to(self.device) for t in loaded.style_bank)
        self.rhythm_bank, self.trained_against = loaded.rhythm_bank, loaded.trained_against
        self.checkpoint_sha256, self.checkpoint_layout = loaded.sha256, loaded.layout

    def save(self, path: str | Path) -> str:
        """Write the fitted model to ``path`` (.safetensors); returns its SHA-256."""
        model = self._need_model()
        sha = checkpoints.save(path, model, normaliser=self.normaliser, class_names=self.class_names,
                               leads=self.leads, mode=self.mode, units=self.units,
                               style_bank=self.style_bank, rhythm_bank=self.rhythm_bank,
                               trained_against=self.trained_against)
        self.checkpoint_sha256, self.checkpoint_layout = sha, "augframe"
        return sha

    def _need_model(self) -> DiffStyleTS:
        if self.model is None:
            raise PluginError("diffstylets has no weights yet: pass checkpoint=PATH or call fit(train) first")
        return self.model

    # ---- training ------------------------------------------------------------------------------
    def fit(self, train: Any, *, seed: int = 0, workdir: Path | None = None) -> dict[str, Any]:
        """Two-stage training on a WindowDataset (or ECGBatch), then the banks; resumes from ``workdir``
        if a state exists and writes the checkpoint there."""
        from augframe_diffstylets.train import Trainer, model_config, stage2_judge

        data = as_windows(train)
        cfg = model_config(self.model_cfg, data)
        self.class_names = tuple(data.class_names)
        self.leads = tuple(data.leads)
        self.units = str(getattr(data, "units", getattr(train, "units", "mV")))
        self.normaliser = fit_normaliser(data, self.mode, seed)
        torch.manual_seed(seed)
        self.model = DiffStyleTS(cfg).to(self.device)
        self._drop_derived()
        judge, index = stage2_judge(self.train_cfg, self.class_names, self.registry, self.device)
        self.trained_against = () if judge is None else (
            judge_ref(self.train_cfg.judge, self.train_cfg.judge_params, role="diffstylets stage 2 (flip loss)"),)
        workdir = Path(workdir) if workdir is not None else None
        trainer = Trainer(self.model, data, mode=self.mode, cfg=self.train_cfg, normaliser=self.normaliser,
                          device=self.device, seed=seed, workdir=workdir, judge=judge, judge_index=index,
                          precision=self.precision)
        history = trainer.run()
        if trainer.ema is not None:
            trainer.ema.copy_to(self.model)
        self.model.eval()
        self.set_style_bank(data, seed)
        result: dict[str, Any] = {"history": history, "epochs": trainer.epoch}
        if workdir is not None:
            result["checkpoint"] = str(workdir / CHECKPOINT_FILE)
            result["sha256"] = self.save(workdir / CHECKPOINT_FILE)
        return result

    def set_style_bank(self, data: Any, seed: int = 0) -> None:
        """Build the banks of real labelled windows: styles (style_source reference/prototype) and
        rhythms (sampler.rhythm = "reference"). Use training-side windows only."""
        model = self._need_model()
        data = as_windows(data)
        self.style_bank = styles.build(model, self.normaliser, data, per_class=self.bank_per_class, seed=seed,
                                       micro_batch=self.micro_batch, device=self.device)
        self.rhythm_bank = RhythmBank.from_windows(data, per_class=self.bank_per_class, seed=seed)

    # ---- generation ----------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Candidates:
        model = self._need_model()
        if request.kind not in self.request_kinds:
            raise ValidationError(f"diffstylets serves {sorted(self.request_kinds)} requests, not {request.kind!r}")
        sc = self._sampler_for(request.options)
        sampler = Sampler(sc, self.schedule, self.mode, self.normaliser.clamp if self.mode == "improved" else sc.clamp,
                          model.cfg.null_class, autocast=self.precision != "float32" and str(self.device).startswith("cuda"))
        labels = self._model_labels(request)
        # candidates carry the request's labels in the request's class naming
        out_labels = np.asarray(request.labels, dtype=np.int64)
        out_names = tuple(request.class_names) or self.class_names
        if request.kind == "transfer":
            x = self._sources_to_model(request.sources)
            keep, refused, placed = None, None, None
            if self._rhythm(sc) == "reference":
                x, keep, refused, placed = self._retime(x, labels, request.seeds, sc)
            out = self._run_chunks(request, labels, sampler, x, keep)
            if placed is not None and sc.beat_check:
                refused = self._check_beats(out, placed, refused)
            signals = self._model_to_sources(out, request.sources)
            src = request.sources
            batch = ECGBatch(signals, src.fs, src.leads, labels=out_labels, class_names=out_names,
                             ids=[f"{NAME}:{i}:{s}" for i, s in zip(src.ids, request.seeds)], units=src.units)
            return Candidates(batch, request.seeds, self.info, source_ids=src.ids, refused=refused)
        out = self._run_chunks(request, labels, sampler, None)
        signals = self.normaliser.inverse(out).cpu().numpy()
        batch = ECGBatch(signals, model.cfg.fs, self.leads, labels=out_labels, class_names=out_names,
                         ids=[f"{NAME}:sample:{s}" for s in request.seeds], units=self.units)
        return Candidates(batch, request.seeds, self.info)

    def _rhythm(self, sampler: SamplerConfig) -> str:
        """The effective beat-timing source: faithful mode keeps the source's beats (reference parity)."""
        if sampler.rhythm == "auto":
            return "reference" if self.mode == "improved" else "source"
        if sampler.rhythm == "reference" and self.mode == "faithful":
            raise ValidationError("sampler.rhythm='reference' is an improved-mode feature; faithful mode reproduces "
                                  "the reference implementation, which keeps the source's beat timing")
        return sampler.rhythm

    def _retime(self, x: torch.Tensor, labels: np.ndarray, seeds: np.ndarray, sampler: SamplerConfig
                ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[str, ...], list[np.ndarray]]:
        """Sources re-timed to target-class rhythms drawn by seed, the QRS keep mask, refusals, and the
        beats placed in each window (target beats plus the virtual edge beats that fall inside it).

        Runs once per call on the host (R-peak detection and the warp are cheap numpy work next to
        the sampler); the sampler itself stays batched on the device.
        """
        if self.rhythm_bank is None:
            raise ValidationError(
                "sampler.rhythm='reference' needs a rhythm bank of real target-class windows: fit() builds one, "
                "or call set_style_bank(training windows); sampler.rhythm='source' keeps the source's beats")
        cfg = self.model.cfg
        xs = x.float().cpu().numpy()
        targets = self.rhythm_bank.draw(labels, seeds, cfg.fs, cfg.signal_length)
        atrial = self.rhythm_bank.draw_atrial(labels, seeds, cfg.fs) if sampler.atrial == "reference" else None
        peaks, refused = source_beats(xs, cfg.fs)
        out, done = retime(xs, peaks, targets, cfg.fs, self.retime_cfg, atrial=atrial)
        refused = tuple(why or ("" if ok else TOO_FEW_BEATS) for why, ok in zip(refused, done))
        pre, post = self.retime_cfg.pre_s * cfg.fs, self.retime_cfg.post_s * cfg.fs
        beats = [extend_beats(t, cfg.signal_length, pre, post) if ok else np.zeros(0) for t, ok in zip(targets, done)]
        keep = None
        if sampler.keep_qrs:
            keep = torch.from_numpy(qrs_mask(beats, cfg.signal_length, cfg.fs, self.retime_cfg)[:, None, :]).to(self.device)
        placed = [np.round(b[(b >= 0) & (b < cfg.signal_length)]).astype(np.int64) for b in beats]
        return torch.from_numpy(out).to(self.device), keep, refused, placed

    def _check_beats(self, out: torch.Tensor, placed: list[np.ndarray], refused: tuple[str, ...]) -> tuple[str, ...]:
        """Refusals plus DREW_A_BEAT where the output has QRS-like energy away from every placed beat."""
        drew = unplaced_beats(out[:, 0].float().cpu().numpy(), placed, self.model.cfg.fs)
        return tuple(why or (DREW_A_BEAT if bad else "") for why, bad in zip(refused, drew))

    def _sampler_for(self, options: Mapping[str, Any]) -> SamplerConfig:
        fields = {a.name for a in attrs.fields(SamplerConfig)}
        given = {k: v for k, v in options.items() if k in fields}
        unknown = [k for k in options if k not in fields and k not in ("references",)]
        if unknown:
            raise ValidationError(f"diffstylets request option {unknown[0]!r} is unknown{suggest(unknown[0], fields)}")
        return attrs.evolve(self.sampler_cfg, **given) if given else self.sampler_cfg

    def _model_labels(self, request: GenerationRequest) -> np.ndarray:
        labels = np.asarray(request.labels)
        if labels.ndim != 1:
            raise ValidationError("diffstylets needs class-index labels (N,), not multi-hot rows")
        if request.class_names and self.class_names and tuple(request.class_names) != self.class_names:
            unknown = [c for c in request.class_names if c not in self.class_names]
            if unknown and any(request.class_names[j] in unknown for j in labels):
                raise ValidationError(f"requested classes {unknown} are not among the model's {self.class_names}")
            labels = np.array([self.class_names.index(request.class_names[j]) for j in labels], dtype=np.int64)
        n_classes = self._need_model().cfg.num_classes
        if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValidationError(f"requested labels must be class indices 0..{n_classes - 1} {self.class_names}")
        return labels.astype(np.int64)

    def _sources_to_model(self, src: ECGBatch) -> torch.Tensor:
        cfg = self._need_model().cfg
        if src.n_leads != cfg.in_channels:
            raise ValidationError(
                f"sources have {src.n_leads} leads {src.leads}; the model takes {cfg.in_channels}: "
                "pick the lead with ECGBatch.select_leads"
            )
        x = src.torch(self.device).float()
        bad = ~torch.isfinite(x).reshape(len(x), -1).all(dim=1)
        if bool(bad.any()):
            first = int(torch.nonzero(bad)[0])
            raise ValidationError(f"source {src.ids[first]!r} contains NaN or Inf; drop or clean it before generating")
        same = src.n_samples == cfg.signal_length and abs(src.fs - cfg.fs) < 1e-6
        if not same:
            if self.length_policy == "reject":
                raise ValidationError(
                    f"sources are {src.n_samples} samples at {src.fs:g} Hz but the model was trained on "
                    f"{cfg.signal_length} samples at {cfg.fs:g} Hz; window/resample them, or set "
                    "length_policy='resample'"
                )
            x = resample_length(x, cfg.signal_length)
        return self.normaliser.forward(x)

    def _model_to_sources(self, out: torch.Tensor, src: ECGBatch) -> np.ndarray:
        return resample_length(self.normaliser.inverse(out), src.n_samples).float().cpu().numpy()

    def _styles_for(self, request: GenerationRequest, idx: np.ndarray, labels: torch.Tensor,
                    own: torch.Tensor | None) -> torch.Tensor:
        """The styles of samples ``idx``: the sources' own, the request's references', or the bank's."""
        if self.style_source == "self" and own is not None:
            return own
        refs = request.options.get("references")
        if refs is not None:
            return self._need_model().style_encoder(self._sources_to_model(refs.select(idx)))[0]
        if self.style_bank is None:
            raise ValidationError(
                f"style_source={self.style_source!r} needs a style bank: fit() builds one, or call "
                "set_style_bank(real_windows), or pass options={'references': ECGBatch}"
            )
        return styles.pick(self.style_bank, labels, request.seeds[idx], self.style_source, self.class_names)

    def _drop_derived(self) -> None:
        """Forget the packed bf16 UNet and the compiled module: they hold copies of old weights."""
        self._bf16_unet = self._bf16_source = self._compiled = None

    def _eps_model(self) -> Any:
        """The UNet call the sampler uses.

        ``precision='bfloat16'`` on the CPU runs the UNet's weights packed in bf16 through
        :class:`~augframe_diffstylets.timemajor.TimeMajorUNet` (time-major activations, every
        convolution one AMX matmul); the sampler's own state (x_t, DDIM update, x0 clamp) stays float32.
        On CUDA, bf16 comes from autocast instead (``precision='auto'`` or ``'bfloat16'``).
        ``compile=True`` runs that module through ``torch.compile`` (CPU: frozen weights for inference),
        compiled once per generator and reused while the weights object stays the same.
        """
        unet = self.model.unet
        cpu_bf16 = self.precision == "bfloat16" and str(self.device).startswith("cpu")
        if cpu_bf16 and (self._bf16_unet is None or self._bf16_source is not unet):
            from augframe_diffstylets.timemajor import TimeMajorUNet

            self._bf16_unet = TimeMajorUNet(unet, torch.bfloat16)
            self._bf16_source = unet
        module = self._bf16_unet if cpu_bf16 else unet
        if self.compile:
            if self._compiled is None or self._compiled[0] is not module:
                from augframe.training import compile_module

                self._compiled = (module, compile_module(module, self.device, cpu=True))
            module = self._compiled[1]
        if not cpu_bf16:
            return module

        def call(x, t, content, style, labels):
            return module(x.to(torch.bfloat16), t, content.to(torch.bfloat16), style.to(torch.bfloat16), labels).float()

        return call

    @torch.inference_mode()
    def _run_chunks(self, request: GenerationRequest, labels: np.ndarray, sampler: Sampler,
                    x_all: torch.Tensor | None, keep_all: torch.Tensor | None = None) -> torch.Tensor:
        """The sampler over micro-batches: transfers of ``x_all`` (model scale), else samples from noise."""
        model, cfg = self._need_model(), self._need_model().cfg
        unet, outs = self._eps_model(), []
        for s in range(0, len(request), self.micro_batch):
            idx = np.arange(s, min(s + self.micro_batch, len(request)))
            rows = slice(idx[0], idx[-1] + 1)
            y, seeds = torch.as_tensor(labels[idx], device=self.device), request.seeds[idx]
            if x_all is None:
                with autocast(self.device, enabled=sampler.autocast):
                    style = self._styles_for(request, idx, y, None)
                outs.append(sampler.sample(unet, (cfg.in_channels, cfg.signal_length), cfg.content_dim, style, y, seeds))
                continue
            with autocast(self.device, enabled=sampler.autocast):
                content, own = model.encode(x_all[rows])
                style = self._styles_for(request, idx, y, own)
            keep = None if keep_all is None else keep_all[rows]
            outs.append(sampler.transfer(unet, x_all[rows], content, style, y, seeds, keep))
        return torch.cat(outs) if outs else torch.zeros(0, cfg.in_channels, cfg.signal_length, device=self.device)
