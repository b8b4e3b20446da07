"""Tiny, fully working plugins for the core's tests (real generators are other issues' work).

Registered by hand with ``Registry.register_module(core_toys, name="toys")``. They follow the
contracts exactly (seeded per sample through augframe.seeding.randn, batch invariant, vectorised),
so they double as an example of the conformance kit passing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import augframe
from augframe.protocols import Candidates, EvaluationResult, FilterResult, GeneratorInfo, Record, Table
from augframe.seeding import randn
from augframe.testing import make_ecg_batch


class ToySource:
    """ECG-like records (see augframe.testing.make_ecg_batch); two windows per patient."""

    def __init__(self, n: int = 40, fs: float = 125.0, seconds: float = 4.0, seed: int = 0) -> None:
        self.n, self.fs, self.seconds, self.seed = n, fs, seconds, seed
        self.name = "toy-source"

    def records(self):
        b = make_ecg_batch(self.n, fs=self.fs, seconds=self.seconds, seed=self.seed)
        for i in range(self.n):
            yield Record(id=f"rec{i:03d}", signal=b.numpy()[i], fs=self.fs, leads=b.leads,
                         label=b.class_names[int(b.labels[i])], patient_id=f"p{i // 2:03d}")

    def fingerprint(self) -> str:
        return f"toy-{self.n}-{self.fs}-{self.seconds}-{self.seed}"


class PhaseShiftGenerator:
    """transfer: circular shift + amplitude scale of the source; sample: a class template + noise.

    All randomness comes from the per-sample seeds (augframe.seeding.randn), so outputs are batch
    invariant. ``fit`` learns per-class mean templates for 'sample' requests.
    """

    def __init__(self, scale: float = 0.3, max_shift: int = 20, device: str = "cpu",
                 trained_against: list | None = None) -> None:
        self.scale, self.max_shift, self.device = scale, max_shift, device
        self.trained_against = trained_against  # list of JudgeRef dicts, as a generator would record them
        self.templates: np.ndarray | None = None
        self.fit_calls = 0

    @property
    def info(self) -> GeneratorInfo:
        return GeneratorInfo("phase-shift", "0.0.1", None, {"scale": self.scale, "max_shift": self.max_shift},
                             trained_against=self.trained_against)

    @property
    def request_kinds(self) -> frozenset[str]:
        return frozenset({"transfer", "sample", "complete"})

    def fit(self, train: Any, *, seed: int = 0, workdir: Any = None) -> None:
        from augframe.windows import as_windows, gather

        w = as_windows(train)
        b = gather(w, np.arange(len(w)))
        self.templates = np.stack([b.numpy()[b.labels == c].mean(0) for c in range(len(w.class_names))])
        self.fit_calls += 1

    def generate(self, request: augframe.GenerationRequest) -> Candidates:
        import torch

        if request.kind in ("transfer", "complete"):
            src = request.sources
            x = src.torch(self.device)
            fs, leads, ids, units = src.fs, src.leads, src.ids, src.units
        else:
            if self.templates is None:
                raise augframe.ValidationError("phase-shift: call fit() before 'sample' requests")
            x = torch.as_tensor(self.templates[request.labels], device=self.device)
            fs, leads, ids, units = 125.0, ("II",), None, "mV"
        z = randn(request.seeds, (2,), stream=0, device=self.device)
        gain = torch.exp(self.scale * z[:, 0])[:, None, None]
        shift = (z[:, 1].clamp(-3, 3) / 3 * self.max_shift).round().long()
        t = torch.arange(x.shape[-1], device=self.device)
        idx = (t[None, :] - shift[:, None]) % x.shape[-1]
        y = torch.gather(x, 2, idx[:, None, :].expand(-1, x.shape[1], -1)) * gain
        noise = randn(request.seeds, tuple(x.shape[1:]), stream=1, device=self.device) * 0.01
        if request.kind == "complete":  # keep the known part exactly, fill the rest
            known = torch.as_tensor(request.mask, device=self.device)
            out = torch.where(known, x, y + noise)
            batch = augframe.ECGBatch(out.cpu(), fs, leads, labels=request.labels, class_names=request.class_names,
                                      units=units)
            return Candidates(batch, request.seeds, self.info, source_ids=ids)
        batch = augframe.ECGBatch((y + noise).cpu(), fs, leads, labels=request.labels,
                                  class_names=request.class_names, units=units)
        return Candidates(batch, request.seeds, self.info, source_ids=ids)


class AmplitudeFilter:
    """Rejects candidates whose std differs from the source's by more than ``max_ratio`` (or is flat)."""

    def __init__(self, max_ratio: float = 1.3) -> None:
        self.max_ratio = max_ratio
        self.name = "amplitude"

    def score(self, candidates: augframe.ECGBatch, sources: augframe.ECGBatch | None = None) -> FilterResult:
        x = candidates.numpy()
        std = x.std(axis=(1, 2))
        ref = sources.numpy().std(axis=(1, 2)) if sources is not None else np.full(len(x), 0.2)
        ratio = np.where(ref > 0, std / np.maximum(ref, 1e-12), 0.0)
        log_dev = np.abs(np.log(np.maximum(ratio, 1e-12)))
        scores = np.clip(1.0 - log_dev / (2 * np.log(self.max_ratio)), 0.0, 1.0)
        flat = std < 1e-6
        scores[flat] = 0.0
        accept = (log_dev <= np.log(self.max_ratio)) & ~flat
        reasons = tuple(
            (("flat line",) if flat[i] else (f"std ratio {ratio[i]:.2f} outside 1/{self.max_ratio}..{self.max_ratio}",))
            if not accept[i] else () for i in range(len(x)))
        return FilterResult(self.name, scores, accept, checks={"std_ratio": scores}, reasons=reasons)


class AlwaysFilter:
    """Accepts (or rejects) everything: for chain tests."""

    def __init__(self, accept: bool = True, score: float = 1.0, name: str = "always") -> None:
        self.accept, self.value, self.name = accept, score, name

    def score(self, candidates: augframe.ECGBatch, sources: augframe.ECGBatch | None = None) -> FilterResult:
        n = len(candidates)
        reasons = tuple(() if self.accept else ("always rejects",) for _ in range(n))
        return FilterResult(self.name, np.full(n, self.value), np.full(n, self.accept), reasons=reasons)


class MomentsEvaluator:
    """Compares per-sample mean/std distributions of real and synthetic ECGs."""

    name = "moments"

    def __init__(self, note: str = "") -> None:
        self.note = note

    def evaluate(self, real, synthetic, *, sources=None, context=augframe.EvalContext()) -> EvaluationResult:
        r, s = real.numpy(), synthetic.numpy()
        metrics = {"real_std": float(r.std(axis=(1, 2)).mean()), "synthetic_std": float(s.std(axis=(1, 2)).mean()),
                   "n_real": len(real), "n_synthetic": len(synthetic),
                   # lineage the pipeline attaches: each synthetic ECG's source id and patient
                   "n_with_source_id": len(synthetic.meta.get("source_id", ())),
                   "n_with_patient": sum(str(p).startswith("p") for p in synthetic.meta.get("patient_id", ()))}
        if sources is not None:
            assert list(synthetic.meta["source_id"]) == list(sources.ids)
            metrics["pearson_r_to_source"] = float(np.mean([np.corrcoef(a.ravel(), b.ravel())[0, 1]
                                                            for a, b in zip(s, sources.numpy())]))
        table = Table(("set", "mean", "std"), [("real", float(r.mean()), float(r.std())),
                                               ("synthetic", float(s.mean()), float(s.std()))])
        return EvaluationResult(self.name, metrics, {"moments": table}, notes=(self.note,) if self.note else (),
                                scale=f"{len(real)} real / {len(synthetic)} synthetic")


class JudgeProbeEvaluator:
    """Reports whether its (named) judge is independent of the run, as a judge-based evaluator must."""

    name = "judge-probe"

    def __init__(self, judge: str = "j", judge_params: dict | None = None) -> None:
        self.judge, self.judge_params = judge, dict(judge_params or {})

    def evaluate(self, real, synthetic, *, sources=None, context=augframe.EvalContext()) -> EvaluationResult:
        from augframe.judges import judge_ref

        ind = context.independence(judge_ref(self.judge, self.judge_params))
        card = {"label": "flip rate", "value": "99%", "status": "good", "judge": ind.to_dict()}
        return EvaluationResult(self.name, {"independent": {True: 1.0, False: 0.0, None: -1.0}[ind.independent]},
                                notes=(ind.reason,), details={"headline": [card], "section": "similarity",
                                                              "n_external": len(context.external),
                                                              "n_train": 0 if context.train is None else len(context.train)})


class JudgedFilter(AlwaysFilter):
    """Accepts everything, but says it judges with a classifier (the recipe convention)."""

    def __init__(self, judge: str = "j", judge_params: dict | None = None) -> None:
        super().__init__(name="judged")


@augframe.hookimpl
def augframe_register_sources(register):
    register("toy-source", ToySource, description="ECG-like test records")


@augframe.hookimpl
def augframe_register_generators(register):
    register("phase-shift", PhaseShiftGenerator, description="seeded shift + gain of the source")


@augframe.hookimpl
def augframe_register_filters(register):
    register("amplitude", AmplitudeFilter, description="std ratio to the source")
    register("always", AlwaysFilter, description="accepts or rejects everything")
    register("judged", JudgedFilter, description="accepts everything; names a judge classifier")


@augframe.hookimpl
def augframe_register_evaluators(register):
    register("moments", MomentsEvaluator, description="mean / std comparison")
    register("judge-probe", JudgeProbeEvaluator, description="reports its judge's independence")


def toy_registry():
    """A registry holding only these toy plugins (no entry points)."""
    import sys

    from augframe.plugins import Registry

    reg = Registry()
    reg.register_module(sys.modules[__name__], name="toys", version="0.0.1")
    return reg


RECIPE = """
[run]
name = "toy"
seed = 7
device = "cpu"
output_dir = "{out}"
progress = false

[data]
source = "toy-source"
params = {{ n = 40, fs = 125.0, seconds = 4.0 }}
split = {{ test_fraction = 0.25 }}

[generator]
name = "phase-shift"
params = {{ scale = 0.3 }}
fit = true

[[filters]]
name = "amplitude"
params = {{ max_ratio = 1.3 }}

[mix]
synthetic_share = 0.33

[generation]
kind = "transfer"
directions = ["N->A", "A->N"]
attempts_per_source = 3
batch_size = 7
{extra}

[[evaluators]]
name = "moments"
max_samples = 50
"""
