"""The plugin conformance kit: checks a plugin author runs from pytest to show a plugin keeps its contract.

Usage in a plugin's test suite::

    from augframe.testing import check_generator, make_ecg_batch

    def test_my_generator_conforms():
        check_generator(MyGenerator(width=8), sources=make_ecg_batch(6, fs=250, seconds=4))

Each ``check_*`` runs on the CPU, raises :class:`ConformanceError` (an ``AssertionError``, so
pytest shows it as a failure) listing every broken rule, and returns a :class:`ConformanceReport`
of the rules it checked. What is checked:

* generators: for every request kind served, the output contract (Candidates, one float32
  ``[n, leads, samples]`` ECG per request, finite, fs, lead names, requested labels and class
  names, request seeds, source ids, GeneratorInfo), same-seed determinism, batch-size invariance
  (a request split in two gives the same samples), different seeds give different samples; for
  ``complete``: the known part comes back bit-exact, and an all-known mask is refused with an
  augframe error or returned unchanged;
* filters: a FilterResult per candidate, scores and checks in [0, 1], boolean accept, one reason
  tuple of strings per sample, determinism, batch-size invariance, no exception on a flat line;
* evaluators: an EvaluationResult whose JSON round trip is lossless, finite metrics;
* sources: Records of float32 ``[leads, samples]`` with standard lead names, a stable fingerprint;
* classifiers: logits ``[n, len(class_names)]``, embeddings ``[n, D]``, batch invariance in eval
  mode, a lossless ``state_dict`` round trip.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from augframe.protocols import (
    Candidates, Classifier, EvalContext, EvaluationResult, Evaluator, Filter, FilterResult, GenerationRequest,
    Generator, GeneratorInfo, Record, Source,
)
from augframe.seeding import Stream, numpy_rng
from augframe.signals import STANDARD_LEADS, ECGBatch


class ConformanceError(AssertionError):
    """A plugin broke one or more rules of its contract; the message lists each."""


@attrs.define
class ConformanceReport:
    """What was checked (rule names) for which plugin."""

    plugin: str
    kind: str
    passed: list[str] = attrs.field(factory=list)


class _Checker:
    def __init__(self, plugin: str, kind: str) -> None:
        self.report = ConformanceReport(plugin, kind)
        self.failures: list[str] = []

    def check(self, rule: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.report.passed.append(rule)
        else:
            self.failures.append(f"{rule}: {detail}" if detail else rule)
        return ok

    def run(self, rule: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # the kit reports, it does not crash on the first broken rule
            self.failures.append(f"{rule}: raised {type(exc).__name__}: {exc}")
            return None

    def done(self) -> ConformanceReport:
        if self.failures:
            lines = "\n  - ".join(self.failures)
            raise ConformanceError(f"{self.report.kind} {self.report.plugin!r} breaks its contract:\n  - {lines}")
        return self.report


# --------------------------------------------------------------------------------------------
# test data
# --------------------------------------------------------------------------------------------
def make_ecg_batch(n: int = 8, *, fs: float = 250.0, seconds: float = 4.0, leads: Sequence[str] = ("II",),
                   class_names: Sequence[str] = ("N", "A"), seed: int = 0, units: str = "mV") -> ECGBatch:
    """Small ECG-like test batch: P-QRS-T beats as Gaussian bumps; class 1 has irregular RR (AF-like).

    Labels cycle through the classes; ids are ``"ecg-<i>"``. Deterministic for a seed.
    """
    rng = numpy_rng(seed, Stream.TESTING_ECG)
    t = np.arange(int(round(seconds * fs))) / fs
    out = np.zeros((n, len(leads), len(t)), dtype=np.float32)
    labels = np.arange(n) % max(1, len(class_names))
    waves = ((-0.2, 0.025, 0.12), (0.0, 0.01, 1.0), (0.02, 0.012, -0.15), (0.25, 0.04, 0.3))  # P, R, S, T
    for i in range(n):
        rr = 60.0 / rng.uniform(55, 95)
        beats, pos = [], rng.uniform(0.1, 0.4)
        while pos < seconds + 0.5:
            beats.append(pos)
            jitter = rng.uniform(-0.35, 0.35) if labels[i] == 1 else rng.normal(0, 0.02)
            pos += rr * (1.0 + jitter)
        sig = np.zeros_like(t)
        for b in beats:
            for j, (offset, width, amp) in enumerate(waves):
                if j == 0 and labels[i] == 1:
                    continue  # no P waves in the AF-like class
                sig += amp * np.exp(-0.5 * ((t - b - offset) / width) ** 2)
        sig += 0.02 * rng.standard_normal(len(t)) + 0.05 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6.3))
        for k in range(len(leads)):
            out[i, k] = sig * (1.0 - 0.15 * k)
    return ECGBatch(out, fs, leads, labels=labels, class_names=class_names, ids=[f"ecg-{i}" for i in range(n)],
                    units=units)


def _labels_for(n: int, class_names: Sequence[str]) -> np.ndarray:
    return (np.arange(n)[::-1] % max(1, len(class_names))).astype(np.int64)


def _same(a: ECGBatch, b: ECGBatch, atol: float) -> bool:
    return a.signals.shape == b.signals.shape and bool(np.allclose(a.numpy(), b.numpy(), atol=atol, rtol=0))


# --------------------------------------------------------------------------------------------
# generators
# --------------------------------------------------------------------------------------------
def check_generator(generator: Any, *, sources: ECGBatch | None = None, class_names: Sequence[str] | None = None,
                    kinds: Sequence[str] | None = None, seed: int = 1234, atol: float = 1e-5,
                    options: dict[str, Any] | None = None, mask_fraction: float = 0.5,
                    seeded: bool = True) -> ConformanceReport:
    """Check a generator's output contract, determinism and batch-size invariance, on the CPU.

    ``sources``: ECGs in the generator's expected layout (fs, leads, length); defaults to
    :func:`make_ecg_batch`. ``kinds``: the request kinds to check (default: all it serves).
    ``seeded=False`` skips "other seeds give other samples" for generators without randomness.
    """
    info = getattr(generator, "info", None)
    name = getattr(info, "name", type(generator).__name__)
    c = _Checker(str(name), "generator")
    if not c.check("satisfies the Generator protocol", isinstance(generator, Generator),
                   "needs info, request_kinds, fit(train, seed=, workdir=), generate(request)"):
        return c.done()
    c.check("info is a GeneratorInfo with a name and version",
            isinstance(info, GeneratorInfo) and bool(info.name) and bool(info.version), repr(info))
    served = frozenset(generator.request_kinds)
    c.check("request_kinds is a non-empty subset of transfer/sample/complete",
            bool(served) and served <= {"transfer", "sample", "complete"}, repr(served))
    sources = sources if sources is not None else make_ecg_batch(6)
    names = tuple(class_names) if class_names is not None else tuple(sources.class_names)
    opts = dict(options or {})
    for kind in (kinds if kinds is not None else sorted(served)):
        n = len(sources)
        labels = _labels_for(n, names)
        if kind == "transfer":
            req = GenerationRequest.transfer(attrs.evolve(sources, class_names=names), labels, seed, **opts)
        elif kind == "sample":
            req = GenerationRequest.sample(labels, seed, class_names=names, **opts)
        else:
            mask = np.ones(sources.signals.shape, dtype=bool)
            mask[..., int(sources.n_samples * (1 - mask_fraction)):] = False
            req = GenerationRequest.complete(attrs.evolve(sources, class_names=names), mask, seed, **opts)
        out = c.run(f"{kind}: generate() runs on the CPU", lambda: generator.generate(req))
        if out is None:
            continue
        _check_candidates(c, kind, out, req, sources)
        again = c.run(f"{kind}: second call", lambda: generator.generate(req))
        if isinstance(out, Candidates) and isinstance(again, Candidates):
            c.check(f"{kind}: same seeds give the same samples", _same(out.batch, again.batch, atol),
                    "two calls with one request differ")
        half = max(1, n // 2)
        parts = [c.run(f"{kind}: sub-request", lambda: generator.generate(req.select(s)))
                 for s in (slice(0, half), slice(half, n))]
        if isinstance(out, Candidates) and all(isinstance(p, Candidates) for p in parts):
            joined = np.concatenate([p.batch.numpy() for p in parts])
            c.check(f"{kind}: batch-size invariant (a request split in two gives the same samples)",
                    joined.shape == out.batch.numpy().shape
                    and bool(np.allclose(joined, out.batch.numpy(), atol=atol, rtol=0)),
                    f"max difference {np.abs(joined - out.batch.numpy()).max() if joined.shape == out.batch.numpy().shape else 'shape'}")
        if kind in ("transfer", "complete"):
            _check_other_units(c, kind, generator, req)
        if kind == "complete":
            _check_all_known(c, generator, req)
        if not seeded:
            continue
        other = attrs.evolve(req, seeds=req.seeds + 1)
        diff = c.run(f"{kind}: other seeds", lambda: generator.generate(other))
        if isinstance(out, Candidates) and isinstance(diff, Candidates):
            c.check(f"{kind}: other seeds give other samples", not _same(out.batch, diff.batch, 1e-7),
                    "the output ignores the per-sample seeds")
    return c.done()


def _check_candidates(c: _Checker, kind: str, out: Any, req: GenerationRequest, sources: ECGBatch) -> None:
    if not c.check(f"{kind}: returns Candidates", isinstance(out, Candidates), type(out).__name__):
        return
    b = out.batch
    n = len(req)
    c.check(f"{kind}: one candidate per request", len(out) == n, f"{len(out)} for {n}")
    c.check(f"{kind}: float32 [n, leads, samples]", b.signals.ndim == 3 and str(b.numpy().dtype) == "float32",
            f"{b.numpy().dtype} {tuple(b.signals.shape)}")
    c.check(f"{kind}: finite values", bool(np.isfinite(b.numpy()).all()))
    c.check(f"{kind}: lead names are standard", all(lead in STANDARD_LEADS for lead in b.leads), repr(b.leads))
    if kind in ("transfer", "complete"):
        assert req.sources is not None  # the request kinds that carry sources
        c.check(f"{kind}: keeps the sources' fs", b.fs == sources.fs, f"{b.fs} vs {sources.fs}")
        c.check(f"{kind}: keeps the sources' leads", b.leads == sources.leads, f"{b.leads} vs {sources.leads}")
        c.check(f"{kind}: keeps the sources' length", b.n_samples == sources.n_samples,
                f"{b.n_samples} vs {sources.n_samples}")
        c.check(f"{kind}: keeps the sources' units", b.units == sources.units, f"{b.units!r} vs {sources.units!r}")
        c.check(f"{kind}: source_ids name the sources", out.source_ids is not None
                and tuple(out.source_ids) == tuple(req.sources.ids), repr(out.source_ids))
    c.check(f"{kind}: labels are the requested labels", b.labels is not None
            and np.array_equal(np.asarray(b.labels), req.labels), f"{b.labels} vs {req.labels}")
    c.check(f"{kind}: class_names are the request's", not req.class_names or tuple(b.class_names) == req.class_names,
            f"{b.class_names} vs {req.class_names}")
    c.check(f"{kind}: seeds are the request's", np.array_equal(out.seeds, req.seeds))
    c.check(f"{kind}: provenance info", isinstance(out.info, GeneratorInfo) and bool(out.info.name))
    if kind == "complete" and req.sources is not None:
        known = req.sources.numpy()
        c.check("complete: keeps the known part bit-exact", bool(np.array_equal(b.numpy()[req.mask], known[req.mask])),
                "values where mask is True changed")


def _check_other_units(c: _Checker, kind: str, generator: Any, req: GenerationRequest) -> None:
    """Sources in other units (e.g. z-scored) come back in those units, or are refused with an augframe error."""
    from augframe.errors import AugframeError

    assert req.sources is not None  # transfer and complete requests carry their sources
    units = "zscore" if req.sources.units == "mV" else "mV"
    rule = f"{kind}: keeps the sources' units (or refuses other units with an augframe error)"
    try:
        out = generator.generate(attrs.evolve(req, sources=attrs.evolve(req.sources, units=units)))
    except AugframeError:
        c.check(rule, True)
        return
    except Exception as exc:
        c.check(rule, False, f"sources in {units!r}: raised {type(exc).__name__}: {exc}")
        return
    got = getattr(getattr(out, "batch", None), "units", None)
    c.check(rule, got == units, f"sources in {units!r}, candidates in {got!r}")


def _check_all_known(c: _Checker, generator: Any, req: GenerationRequest) -> None:
    """An all-known mask leaves nothing to complete: refuse it with an augframe error, or return it unchanged."""
    from augframe.errors import AugframeError

    full = attrs.evolve(req, mask=np.ones_like(req.mask))
    try:
        out = generator.generate(full)
    except AugframeError:
        c.check("complete: an all-known mask is refused with an augframe error or returned unchanged", True)
        return
    except Exception as exc:
        c.check("complete: an all-known mask is refused with an augframe error or returned unchanged", False,
                f"raised {type(exc).__name__}: {exc}")
        return
    same = isinstance(out, Candidates) and req.sources is not None and np.array_equal(out.batch.numpy(), req.sources.numpy())
    c.check("complete: an all-known mask is refused with an augframe error or returned unchanged", same,
            "the output differs from the fully known input")


# --------------------------------------------------------------------------------------------
# filters
# --------------------------------------------------------------------------------------------
def check_filter(filt: Any, candidates: ECGBatch | None = None, sources: ECGBatch | None = None, *,
                 atol: float = 1e-9) -> ConformanceReport:
    """Check a filter's FilterResult contract, determinism, batch invariance and flat-line robustness."""
    name = str(getattr(filt, "name", type(filt).__name__))
    c = _Checker(name, "filter")
    if not c.check("satisfies the Filter protocol", isinstance(filt, Filter), "needs name and score(candidates, sources)"):
        return c.done()
    candidates = candidates if candidates is not None else make_ecg_batch(6, seed=7)
    if sources is None and len(candidates):
        sources = make_ecg_batch(len(candidates), fs=candidates.fs, leads=candidates.leads,
                                 seconds=candidates.duration_s, class_names=candidates.class_names or ("N", "A"),
                                 seed=8)
    res = c.run("score() runs on the CPU", lambda: filt.score(candidates, sources))
    if res is None:
        return c.done()
    _check_result(c, res, len(candidates), name)
    again = c.run("second call", lambda: filt.score(candidates, sources))
    if isinstance(res, FilterResult) and isinstance(again, FilterResult):
        c.check("deterministic", np.allclose(res.scores, again.scores, atol=atol)
                and np.array_equal(res.accept, again.accept))
    n = len(candidates)
    half = max(1, n // 2)
    parts = [c.run("sub-batch", lambda: filt.score(candidates.select(s), None if sources is None else sources.select(s)))
             for s in (slice(0, half), slice(half, n))]
    if isinstance(res, FilterResult) and all(isinstance(p, FilterResult) for p in parts):
        c.check("batch-size invariant", np.allclose(np.concatenate([p.scores for p in parts]), res.scores, atol=1e-6)
                and np.array_equal(np.concatenate([p.accept for p in parts]), res.accept),
                "scores of a split batch differ from the whole batch's")
    flat = candidates.with_signals(np.zeros_like(candidates.numpy()))
    fres = c.run("a flat line is scored, not an exception", lambda: filt.score(flat, sources))
    if fres is not None:
        _check_result(c, fres, n, name, prefix="flat line: ")
    return c.done()


def _check_result(c: _Checker, res: Any, n: int, name: str, prefix: str = "") -> None:
    if not c.check(f"{prefix}returns a FilterResult", isinstance(res, FilterResult), type(res).__name__):
        return
    c.check(f"{prefix}one entry per candidate", len(res) == n, f"{len(res)} for {n}")
    c.check(f"{prefix}result name is the filter's name", res.name == name, f"{res.name!r} vs {name!r}")
    c.check(f"{prefix}scores in [0, 1]", bool(np.all((res.scores >= 0) & (res.scores <= 1))))
    c.check(f"{prefix}accept is boolean", res.accept.dtype == bool)
    c.check(f"{prefix}checks in [0, 1]", all(np.all((v >= 0) & (v <= 1)) for v in res.checks.values()))
    c.check(f"{prefix}reasons: one tuple of strings per sample",
            len(res.reasons) == n and all(isinstance(r, tuple) and all(isinstance(s, str) for s in r)
                                          for r in res.reasons))
    c.check(f"{prefix}rejected samples say why",
            all(res.accept[i] or len(res.reasons[i]) > 0 for i in range(min(n, len(res)))),
            "a rejected sample has no reason")


# --------------------------------------------------------------------------------------------
# evaluators
# --------------------------------------------------------------------------------------------
def check_evaluator(evaluator: Any, real: ECGBatch | None = None, synthetic: ECGBatch | None = None,
                    sources: ECGBatch | None = None, *, context: EvalContext | None = None) -> ConformanceReport:
    """Check an evaluator returns an EvaluationResult with finite metrics and a lossless JSON round trip."""
    name = str(getattr(evaluator, "name", type(evaluator).__name__))
    c = _Checker(name, "evaluator")
    if not c.check("satisfies the Evaluator protocol", isinstance(evaluator, Evaluator),
                   "needs name and evaluate(real, synthetic, *, sources, context)"):
        return c.done()
    real = real if real is not None else make_ecg_batch(8, seed=11)
    synthetic = synthetic if synthetic is not None else make_ecg_batch(8, seed=12)
    ctx = context or EvalContext(seed=0, device="cpu")
    res = c.run("evaluate() runs on the CPU", lambda: evaluator.evaluate(real, synthetic, sources=sources, context=ctx))
    if res is None:
        return c.done()
    if not c.check("returns an EvaluationResult", isinstance(res, EvaluationResult), type(res).__name__):
        return c.done()
    c.check("metrics are finite numbers", all(isinstance(v, (int, float)) and math.isfinite(float(v))
                                              for v in res.metrics.values()), repr(dict(res.metrics)))
    text = c.run("serialises to JSON", lambda: res.to_json())
    if text is not None:
        back = c.run("reads back from JSON", lambda: EvaluationResult.from_dict(json.loads(text)))
        if back is not None:
            c.check("JSON round trip is lossless", json.loads(back.to_json()) == json.loads(text),
                    "from_dict(to_json()) differs from the original")
    return c.done()


# --------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------
def check_source(source: Any, *, limit: int = 5) -> ConformanceReport:
    """Check a source yields well-formed Records and a stable fingerprint (reads at most ``limit``)."""
    name = str(getattr(source, "name", type(source).__name__))
    c = _Checker(name, "source")
    if not c.check("satisfies the Source protocol", isinstance(source, Source), "needs name, records(), fingerprint()"):
        return c.done()
    recs = c.run("records() iterates", lambda: list(itertools.islice(source.records(), limit)))
    if recs is not None:
        c.check("yields at least one record", len(recs) > 0)
        for r in recs:
            if not c.check("yields Record objects", isinstance(r, Record), type(r).__name__):
                continue
            sig = np.asarray(r.signal)
            c.check(f"record {r.id!r}: float32 [leads, samples]", sig.ndim == 2 and sig.dtype == np.float32,
                    f"{sig.dtype} {sig.shape}")
            c.check(f"record {r.id!r}: fs > 0", float(r.fs) > 0, str(r.fs))
            c.check(f"record {r.id!r}: one standard lead name per row",
                    len(r.leads) == sig.shape[0] and all(lead in STANDARD_LEADS for lead in r.leads), repr(r.leads))
        ids = [r.id for r in recs if isinstance(r, Record)]
        c.check("record ids are unique", len(ids) == len(set(ids)))
    fp1 = c.run("fingerprint()", source.fingerprint)
    fp2 = c.run("fingerprint() again", source.fingerprint)
    c.check("fingerprint is a stable non-empty string", isinstance(fp1, str) and bool(fp1) and fp1 == fp2)
    return c.done()


# --------------------------------------------------------------------------------------------
# classifiers
# --------------------------------------------------------------------------------------------
def check_classifier(classifier: Any, x: ECGBatch | None = None, *, atol: float = 1e-4) -> ConformanceReport:
    """Check logits/embedding shapes, eval-mode batch invariance and a state_dict round trip."""
    import torch

    name = type(classifier).__name__
    c = _Checker(name, "classifier")
    if not c.check("satisfies the Classifier protocol", isinstance(classifier, Classifier),
                   "needs class_names, __call__, embed, state_dict, load_state_dict"):
        return c.done()
    x = x if x is not None else make_ecg_batch(4, seed=3)
    xt = x.torch("cpu")
    classifier.eval()
    with torch.no_grad():
        logits = c.run("forward runs on the CPU", lambda: classifier(xt))
        emb = c.run("embed runs on the CPU", lambda: classifier.embed(xt))
        if logits is not None:
            c.check("logits are [n, len(class_names)]", tuple(logits.shape) == (len(x), len(classifier.class_names)),
                    f"{tuple(logits.shape)}")
            parts = [c.run("sub-batch", lambda: classifier(xt[s])) for s in (slice(0, 1), slice(1, len(x)))]
            if all(p is not None for p in parts):
                c.check("batch-size invariant in eval mode", torch.allclose(torch.cat(parts), logits, atol=atol))
        if emb is not None:
            c.check("embed is [n, D]", emb.ndim == 2 and emb.shape[0] == len(x), f"{tuple(emb.shape)}")
        state = {k: v.clone() for k, v in classifier.state_dict().items()}
        c.run("load_state_dict(state_dict())", lambda: classifier.load_state_dict(state))
        again = c.run("forward after reload", lambda: classifier(xt))
        if logits is not None and again is not None:
            c.check("state_dict round trip is lossless", torch.allclose(again, logits, atol=atol))
    return c.done()


def check_registered(registry: Any, kind: str, name: str, params: dict[str, Any] | None = None,
                     **kwargs: Any) -> ConformanceReport:
    """Build ``name`` of ``kind`` through the registry (as a recipe would) and run its kind's checks."""
    obj = registry.create(kind, name, params or {})
    checks: dict[str, Callable[..., ConformanceReport]] = {
        "generator": check_generator, "filter": check_filter, "evaluator": check_evaluator, "source": check_source,
        "classifier": check_classifier}
    fn = checks[kind]
    return fn(obj, **kwargs)


__all__ = [
    "ConformanceError", "ConformanceReport", "make_ecg_batch", "check_generator", "check_filter",
    "check_evaluator", "check_source", "check_classifier", "check_registered",
]
