"""What each kind of plugin promises: the typed contracts of generators, filters, evaluators, sources.

Plugins register factories (see :mod:`augframe.hookspecs`); the objects those factories return
satisfy one of the runtime-checkable protocols here. The value types they exchange are frozen attrs
classes, so a stage cannot change what an earlier stage produced.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import attrs
import numpy as np

from augframe.errors import ValidationError
from augframe.jsonable import jsonable
from augframe.judges import Independence, JudgeRef, assess
from augframe.seeding import derive_seeds
from augframe.signals import ECGBatch

RequestKind = Literal["transfer", "sample", "complete"]
REQUEST_KINDS: tuple[str, ...] = ("transfer", "sample", "complete")


def _strs(items: Iterable[str]) -> tuple[str, ...]:
    """attrs converter: any iterable of names -> a tuple (typed, so checkers see the field's type)."""
    return tuple(items)


def _int64(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------
@attrs.frozen(eq=False)
class GenerationRequest:
    """What to generate, one entry per output sample.

    Three kinds cover the mission:
      * ``transfer``: one source ECG in, one ECG of ``labels[i]`` out (style transfer, SDEdit);
      * ``sample``: nothing in, an ECG of ``labels[i]`` out (unconditional / label-conditioned);
      * ``complete``: the known part of an ECG (``known`` where ``mask`` is True) in, the whole ECG
        out (imputation and forecasting).

    ``seeds[i]`` alone decides sample i's randomness, so outputs do not depend on batch size or
    order. ``options`` carries per-call settings a generator documents (e.g. SDEdit strength).

    Fields: ``kind`` (one of ``REQUEST_KINDS``); ``labels`` (int64 class index per sample, or float32
    multi-hot rows); ``seeds`` (int64, one per sample); ``sources`` (the input ECGs, one per sample, for
    transfer and complete); ``mask`` (bool, the shape of ``sources.signals``, True where known; complete
    only); ``class_names`` (names of the label indices); ``options`` (per-call settings).
    """

    kind: str
    labels: np.ndarray
    seeds: np.ndarray = attrs.field(converter=_int64)
    sources: ECGBatch | None = None
    mask: np.ndarray | None = None
    class_names: tuple[str, ...] = attrs.field(converter=_strs, default=())
    options: Mapping[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.kind not in REQUEST_KINDS:
            raise ValidationError(f"GenerationRequest.kind={self.kind!r}; use one of {REQUEST_KINDS}")
        labels = np.asarray(self.labels)
        object.__setattr__(self, "labels", labels.astype(np.int64) if labels.ndim == 1 else labels.astype(np.float32))
        n = len(self.labels)
        if len(self.seeds) != n:
            raise ValidationError(f"GenerationRequest.seeds has {len(self.seeds)} entries for {n} labels")
        if self.kind in ("transfer", "complete"):
            if self.sources is None or len(self.sources) != n:
                raise ValidationError(
                    f"a {self.kind!r} request needs sources with one ECG per label ({n}); "
                    f"got {0 if self.sources is None else len(self.sources)}"
                )
        if self.kind == "complete":
            self._validate_mask(n)
        elif self.mask is not None:
            raise ValidationError(f"GenerationRequest.mask is only for 'complete' requests, not {self.kind!r}")

    def _validate_mask(self, n: int) -> None:
        if self.mask is None:
            raise ValidationError("a 'complete' request needs mask (True where the signal is known)")
        if self.sources is None:
            raise ValidationError("a 'complete' request needs sources (the known signals)")
        mask = np.asarray(self.mask, dtype=bool)
        expected = tuple(self.sources.signals.shape)
        if mask.shape != expected:
            raise ValidationError(
                f"GenerationRequest.mask has shape {mask.shape}; it must match the known signals {expected}"
            )
        object.__setattr__(self, "mask", mask)

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def transfer(cls, sources: ECGBatch, labels: Sequence[int] | np.ndarray, seed: int, **options: Any) -> GenerationRequest:
        """Turn each source into an ECG of ``labels[i]``; per-sample seeds derive from ``seed``."""
        return cls("transfer", np.asarray(labels), derive_seeds(seed, len(sources)), sources=sources,
                   class_names=sources.class_names, options=options)

    @classmethod
    def sample(cls, labels: Any, seed: int, class_names: Sequence[str] = (), **options: Any) -> GenerationRequest:
        """Generate one ECG per entry of ``labels`` (indices or multi-hot rows)."""
        labels = np.asarray(labels)
        return cls("sample", labels, derive_seeds(seed, len(labels)), class_names=tuple(class_names), options=options)

    @classmethod
    def complete(cls, known: ECGBatch, mask: np.ndarray, seed: int, labels: Any = None, **options: Any) -> GenerationRequest:
        """Fill in each ECG where ``mask`` is False (imputation, forecasting)."""
        if labels is None:
            labels = known.labels if known.labels is not None else np.full(len(known), -1)
        return cls("complete", np.asarray(labels), derive_seeds(seed, len(known)), sources=known, mask=mask,
                   class_names=known.class_names, options=options)

    def select(self, index: Any) -> GenerationRequest:
        """The sub-request of the given samples (each keeps its own seed)."""
        idx = np.arange(len(self))[index]
        return attrs.evolve(
            self,
            labels=self.labels[idx],
            seeds=self.seeds[idx],
            sources=None if self.sources is None else self.sources.select(idx),
            mask=None if self.mask is None else self.mask[idx],
        )


def _judge_refs(value: Any) -> tuple[JudgeRef, ...] | None:
    if value is None:
        return None
    return tuple(v if isinstance(v, JudgeRef) else JudgeRef.from_dict(v) for v in value)


@attrs.frozen
class GeneratorInfo:
    """Who made a candidate: plugin name, distribution version, weights hash and settings.

    ``trained_against`` lists the classifiers the generator's training optimised against (e.g. a
    flip loss); ``()`` means none, ``None`` means the generator does not know (then no judge can be
    shown to be independent of it).

    Fields: ``name`` (the registered generator name); ``version`` (the plugin's version);
    ``checkpoint_sha256`` (hash of the weights file, None when untrained or built in memory);
    ``params`` (the JSON-ready settings that made the candidates); ``trained_against`` (see above,
    :class:`~augframe.judges.JudgeRef` entries, dicts are converted).
    """

    name: str
    version: str = "0"
    checkpoint_sha256: str | None = None
    params: Mapping[str, Any] = attrs.field(factory=dict)
    trained_against: tuple[JudgeRef, ...] | None = attrs.field(default=None, converter=_judge_refs)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(eq=False)
class Candidates:
    """Generated ECGs with per-sample provenance; ``batch.labels`` are the requested labels.

    Fields: ``batch`` (the ECGs: float32 ``[n, leads, samples]``, the request's labels and class names,
    the sources' fs, leads and units); ``seeds`` (the request's seeds, one per ECG); ``info`` (the
    :class:`GeneratorInfo` that made them); ``source_ids`` (the id of each ECG's source, for transfer
    and complete; None for sample); ``refused`` (None, or per ECG the generator's own reason why it is
    not what was asked for, e.g. a source whose rhythm cannot be re-timed, '' where it is: the filter
    chain rejects those with that reason).
    """

    batch: ECGBatch
    seeds: np.ndarray = attrs.field(converter=_int64)
    info: GeneratorInfo
    source_ids: tuple[str | None, ...] | None = None
    refused: tuple[str, ...] | None = None

    def __attrs_post_init__(self) -> None:
        if len(self.seeds) != len(self.batch):
            raise ValidationError(f"Candidates.seeds has {len(self.seeds)} entries for {len(self.batch)} ECGs")
        if self.source_ids is not None and len(self.source_ids) != len(self.batch):
            raise ValidationError("Candidates.source_ids must have one entry per ECG")
        if self.refused is not None:
            object.__setattr__(self, "refused", tuple(str(r) for r in self.refused))
            if len(self.refused) != len(self.batch):
                raise ValidationError("Candidates.refused must have one entry per ECG ('' = not refused)")

    def __len__(self) -> int:
        return len(self.batch)

    def select(self, index: Any) -> Candidates:
        idx = np.arange(len(self))[index]
        return attrs.evolve(
            self,
            batch=self.batch.select(idx),
            seeds=self.seeds[idx],
            source_ids=None if self.source_ids is None else tuple(self.source_ids[i] for i in idx),
            refused=None if self.refused is None else tuple(self.refused[i] for i in idx),
        )


@runtime_checkable
class Generator(Protocol):
    """Makes ECGs. ``fit`` is optional in practice (pretrained generators may raise or no-op)."""

    @property
    def info(self) -> GeneratorInfo: ...

    @property
    def request_kinds(self) -> frozenset[str]: ...

    def fit(self, train: Any, *, seed: int = 0, workdir: Path | None = None) -> Any: ...

    def generate(self, request: GenerationRequest) -> Candidates: ...


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------
def _float_array(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


@attrs.frozen(eq=False)
class FilterResult:
    """Per-sample verdict of one filter (or a chain).

    ``checks`` maps each check name to per-sample values in [0, 1] (1 = passed); ``reasons[i]``
    lists, in words, why sample i lost points or was rejected (empty when it passed cleanly).

    Fields: ``name`` (the filter's name); ``scores`` (float64 in [0, 1], one per candidate);
    ``accept`` (bool, one per candidate); ``checks`` (see above); ``reasons`` (see above; empty tuple
    means no reasons for anyone).
    """

    name: str
    scores: np.ndarray = attrs.field(converter=_float_array)
    accept: np.ndarray = attrs.field(converter=lambda a: np.asarray(a, dtype=bool))
    checks: Mapping[str, np.ndarray] = attrs.field(factory=dict)
    reasons: tuple[tuple[str, ...], ...] = ()

    def __attrs_post_init__(self) -> None:
        n = len(self.scores)
        if len(self.accept) != n:
            raise ValidationError(f"FilterResult {self.name!r}: accept has {len(self.accept)} entries for {n} scores")
        if n and (np.nanmin(self.scores) < 0 or np.nanmax(self.scores) > 1 or np.isnan(self.scores).any()):
            raise ValidationError(f"FilterResult {self.name!r}: scores must lie in [0, 1]")
        object.__setattr__(self, "checks", {k: _float_array(v) for k, v in self.checks.items()})
        for key, col in self.checks.items():
            if len(col) != n:
                raise ValidationError(f"FilterResult {self.name!r}: check {key!r} has {len(col)} entries for {n}")
        if not self.reasons:
            object.__setattr__(self, "reasons", tuple(() for _ in range(n)))
        elif len(self.reasons) != n:
            raise ValidationError(f"FilterResult {self.name!r}: reasons has {len(self.reasons)} entries for {n}")

    def __len__(self) -> int:
        return len(self.scores)

    def sample_record(self, i: int) -> dict[str, Any]:
        """Sample i's score, verdict, checks and reasons, JSON-ready (for the bank manifest)."""
        return {
            "score": float(self.scores[i]),
            "accept": bool(self.accept[i]),
            "checks": {k: float(v[i]) for k, v in self.checks.items()},
            "reasons": list(self.reasons[i]),
        }


@runtime_checkable
class Filter(Protocol):
    """Scores candidates (against their sources, when a filter needs them) and accepts or rejects."""

    @property
    def name(self) -> str: ...

    def score(self, candidates: ECGBatch, sources: ECGBatch | None = None) -> FilterResult: ...


# --------------------------------------------------------------------------------------------
# Evaluators
# --------------------------------------------------------------------------------------------
@attrs.frozen
class Table:
    """A small results table: column names and rows of JSON-serialisable cells."""

    columns: tuple[str, ...] = attrs.field(converter=_strs)
    rows: tuple[tuple[Any, ...], ...] = attrs.field(converter=lambda rows: tuple(tuple(r) for r in rows))
    caption: str = ""

    def __attrs_post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValidationError(f"Table row {row} has {len(row)} cells for {len(self.columns)} columns")


@attrs.frozen
class Figure:
    """A figure as self-contained markup: ``svg`` text or base64 ``png``."""

    format: str
    data: str
    caption: str = ""

    def __attrs_post_init__(self) -> None:
        if self.format not in ("svg", "png"):
            raise ValidationError(f"Figure.format={self.format!r}; use 'svg' or 'png'")


@attrs.frozen
class EvaluationResult:
    """Metrics, tables and figures of one evaluator run; ``scale`` says at what scale it was made.

    Fields: ``name`` (the evaluator's name); ``metrics`` (dotted name -> finite number, e.g.
    ``judge.flip_rate``); ``tables`` (name -> :class:`Table`); ``figures`` (name -> :class:`Figure`);
    ``notes`` (sentences the report prints: caveats, what was skipped and why); ``scale`` (e.g. "CPU,
    width 0.25, 2 folds"); ``details`` (anything JSON-ready the report or a reader may use).
    """

    name: str
    metrics: Mapping[str, float] = attrs.field(factory=dict)
    tables: Mapping[str, Table] = attrs.field(factory=dict)
    figures: Mapping[str, Figure] = attrs.field(factory=dict)
    notes: tuple[str, ...] = attrs.field(converter=_strs, default=())
    scale: str = ""
    details: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(attrs.asdict(self, recurse=True))

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvaluationResult:
        return cls(
            name=d["name"],
            metrics=dict(d.get("metrics", {})),
            tables={k: Table(**v) for k, v in d.get("tables", {}).items()},
            figures={k: Figure(**v) for k, v in d.get("figures", {}).items()},
            notes=d.get("notes", ()),
            scale=d.get("scale", ""),
            details=dict(d.get("details", {})),
        )


@attrs.frozen(eq=False)
class ExternalSet:
    """Real ECGs from another database, for testing only (never trained on).

    ``one_class`` names the class of every ECG in a one-class database (e.g. an AF-only Holter set):
    such a set can only report sensitivity or specificity for that class, never a pooled AUROC.

    Fields: ``name`` (e.g. "afpdb"); ``batch`` (its ECGs, preprocessed like the run's); ``one_class``
    (see above; None when the set has several classes).
    """

    name: str
    batch: ECGBatch
    one_class: str | None = None


# EvalContext's converters; typed ones because mypy's attrs plugin leaves ``converter=tuple`` generic
def _external_set_tuple(sets: Iterable[ExternalSet]) -> tuple[ExternalSet, ...]:
    return tuple(sets)


def _judge_ref_tuple(refs: Iterable[JudgeRef]) -> tuple[JudgeRef, ...]:
    return tuple(refs)


@attrs.frozen(eq=False)
class EvalContext:
    """Run-level settings and data every evaluator gets.

    ``train`` is the run's training split (the side the generator's sources came from; evaluators
    that train classifiers draw from it), ``external`` the external test sets, and
    ``dependent_judges`` the classifiers used in generator training or filtering, with
    ``provenance_known`` False when the generator did not say what it trained against (see
    :mod:`augframe.judges`).

    Fields: ``seed`` (the run's seed: derive every random step from it); ``device`` (where to run
    models); ``workdir`` (a folder the evaluator may cache in, None for none); ``progress`` (show
    progress bars); ``train``, ``external``, ``dependent_judges``, ``provenance_known`` (see above).
    """

    seed: int = 0
    device: str = "cpu"
    workdir: Path | None = None
    progress: bool = False
    train: ECGBatch | None = None
    external: tuple[ExternalSet, ...] = attrs.field(default=(), converter=_external_set_tuple)
    dependent_judges: tuple[JudgeRef, ...] = attrs.field(default=(), converter=_judge_ref_tuple)
    provenance_known: bool = True

    def independence(self, judge: JudgeRef) -> Independence:
        """Is ``judge`` independent of this run's generator training and filter chain?"""
        return assess(judge, self.dependent_judges, self.provenance_known)


@runtime_checkable
class Evaluator(Protocol):
    """Measures synthetic ECGs against real ones (fidelity, downstream utility, statistics)."""

    @property
    def name(self) -> str: ...

    def evaluate(
        self, real: ECGBatch, synthetic: ECGBatch, *, sources: ECGBatch | None = None,
        context: EvalContext = EvalContext(),
    ) -> EvaluationResult: ...


# --------------------------------------------------------------------------------------------
# Data sources
# --------------------------------------------------------------------------------------------
@attrs.frozen(eq=False)
class Record:
    """One recording as read from disk, before preprocessing: ``signal`` is float32 [leads, samples] in mV."""

    id: str
    signal: np.ndarray
    fs: float
    leads: tuple[str, ...] = attrs.field(converter=_strs)
    label: str | None = None
    statements: Mapping[str, float] = attrs.field(factory=dict)
    patient_id: str | None = None
    meta: Mapping[str, Any] = attrs.field(factory=dict)


@runtime_checkable
class Source(Protocol):
    """Yields records from a database layout or arrays; problems are collected, not raised mid-way."""

    @property
    def name(self) -> str: ...

    def records(self) -> Iterator[Record]: ...

    def fingerprint(self) -> str: ...


# --------------------------------------------------------------------------------------------
# Classifiers (shared judges)
# --------------------------------------------------------------------------------------------
@runtime_checkable
class Classifier(Protocol):
    """A torch module: ``forward(x [N, leads, samples]) -> logits [N, C]``, plus ``embed``.

    ``class_names`` names the logit columns; ``embed(x)`` returns ``[N, D]`` features used for
    distribution-level metrics (Frechet distance, MMD). Input scaling (e.g. per-sample z-score) is
    the classifier's own business and happens inside ``forward``.
    """

    class_names: tuple[str, ...]

    def __call__(self, x: Any) -> Any: ...

    def embed(self, x: Any) -> Any: ...

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any, strict: bool = True) -> Any: ...


@attrs.frozen
class PluginKind:
    """One kind of plugin: the protocol its objects satisfy and the hook that registers them.

    ``run_context`` names the parameters the pipeline gives a factory itself when the factory takes
    them and the recipe leaves them unset: the run's ``device``, and a filter's training windows
    ``train`` and every window of the run's data ``all_windows`` (e.g. the near-copy gate).
    """

    name: str
    protocol: type
    run_context: tuple[str, ...] = ()

    @property
    def hook(self) -> str:
        """The hookspec in :mod:`augframe.hookspecs` that registers factories of this kind."""
        return f"augframe_register_{self.name}s"


#: Every plugin kind, by name: the one table the registry, the recipe check and the CLI read.
KINDS: dict[str, PluginKind] = {k.name: k for k in (
    PluginKind("generator", Generator, ("device",)),
    PluginKind("filter", Filter, ("device", "train", "all_windows")),
    PluginKind("evaluator", Evaluator, ("device",)),
    PluginKind("source", Source),
    PluginKind("classifier", Classifier),
)}
