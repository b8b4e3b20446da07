"""External test sets: real ECGs from other databases, read exactly like the run's data, never trained on.

:func:`load_external_sets` reads a recipe's ``[[evaluation.external]]`` entries for the pipeline;
:func:`read_external` reads one set without a recipe (benches, notebooks).

A set is read with the run's preprocessing, so its windows have the run's sampling rate, window
length, cleaning, quality gate and lead: the external signal (a source's ``channel``) is reported
under the run's lead name (a source with a ``lead_as`` parameter is given it). Three settings are
not inherited: the run's ``max_windows_per_record`` and ``allowed_fs`` (they describe the training
database) and ``short_records`` (``"drop"``: every window is recorded signal); an entry may override
any setting but fs, window_s, leads and normalise. The windows are then scaled by the
normaliser fitted on the run's training split, as it is: nothing is fitted on an external set.

``max_windows_per_record`` keeps at most that many windows per record and class, drawn with a seed
derived from the run seed and the set's name. The batch's meta columns: ``record`` (the record
file), ``patient`` and ``patient_id`` (the subject), ``episode`` (the record or rhythm episode the
window was cut from), ``start_s`` (window start in the record, s) and ``quality``.
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from augframe.data.batches import windows_from_source
from augframe.data.normalise import Normaliser
from augframe.data.prepare import PREPROCESS_EXTRAS, RunData
from augframe.data.preprocess import PreprocessConfig
from augframe.data.selection import limit_per_class
from augframe.errors import DataError, RecipeError, ValidationError, suggest
from augframe.protocols import ExternalSet, Source
from augframe.seeding import derive_seeds
from augframe.signals import ECGBatch
from augframe.windows import as_windows

#: Run settings an external set does not inherit, and what it uses instead.
NOT_INHERITED: Mapping[str, Any] = {"max_windows_per_record": None, "allowed_fs": None, "short_records": "drop"}
#: Keys of an entry's ``preprocessing`` beyond the PreprocessConfig fields.
OVERRIDE_EXTRAS = ("strict",)
#: Record.meta keys that say where a record (a rhythm episode) lies in its recording.
_WHERE = ("recording", "onset_s")


def external_config(run: PreprocessConfig | Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *,
                    where: str = "preprocessing") -> tuple[PreprocessConfig, bool]:
    """The preprocessing of an external set: the run's, less what is not inherited, plus ``overrides``.

    Returns the config and ``strict``; an unknown override key raises RecipeError naming ``where``.
    """
    base = run.to_dict() if isinstance(run, PreprocessConfig) else dict(run)
    base = {k: v for k, v in base.items() if k not in PREPROCESS_EXTRAS}
    overrides = dict(overrides or {})
    strict = bool(overrides.pop("strict", False))
    valid = [f.name for f in attrs.fields(PreprocessConfig)]
    for key in overrides:
        if key not in valid:
            raise RecipeError(f"unknown key {where}.{key}{suggest(key, valid + list(OVERRIDE_EXTRAS))}")
    try:
        return PreprocessConfig(**{**base, **NOT_INHERITED, **overrides}), strict
    except (ValidationError, TypeError, ValueError) as exc:
        raise RecipeError(f"{where}: {exc}") from exc


def _set_seed(seed: int, name: str) -> int:
    return int(derive_seeds(seed, 1, offset=zlib.crc32(name.encode()))[0])


def _make_source(source: str | Source, params: Mapping[str, Any] | None, lead: str | None,
                 one_class: str | None, registry: Any) -> Source:
    """The source object; a registered name is built with ``params`` plus the run's lead and one class."""
    if not isinstance(source, str):
        if params or lead is not None:
            raise ValidationError("params and lead are for a source given by name; a built source is used as it "
                                  "is (set its lead_as yourself)")
        return source
    if registry is None:
        from augframe.plugins import default_registry

        registry = default_registry()
    accepted = inspect.signature(registry.get("source", source).factory).parameters
    params = dict(params or {})
    if lead is not None and "lead_as" in accepted:
        params.setdefault("lead_as", lead)
    if one_class is not None and "one_class" in accepted:
        if params.setdefault("one_class", one_class) != one_class:
            raise RecipeError(f"params.one_class = {params['one_class']!r} contradicts one_class = {one_class!r}; "
                              "give it once")
    return registry.create("source", source, params)


def _in_recordings(batch: ECGBatch) -> ECGBatch:
    """Meta in terms of recordings: ``record`` = the record file, ``start_s`` from its start (see above)."""
    m = batch.meta
    recording = np.array([r if r is not None else e for r, e in zip(m["recording"], m["record"])], dtype=object)
    onset = np.array([0.0 if o is None else float(o) for o in m["onset_s"]])
    meta = {"record": recording.astype(str), "patient": m["patient"], "patient_id": m["patient"],
            "episode": m["record"], "start_s": m["start_s"] + onset, "quality": m["quality"]}
    return ECGBatch(batch.signals, batch.fs, batch.leads, labels=batch.labels, class_names=batch.class_names,
                    ids=batch.ids, meta=meta)


def _capped(batch: ECGBatch, recording: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """Indices of at most ``cap`` windows per (recording, class), drawn with ``seed``, in batch order."""
    keys = [f"{r}\x00{y}" for r, y in zip(recording, batch.require_labels("an external set"))]
    ids = [str(i) for i in range(len(batch))]
    return np.asarray(limit_per_class(ids, keys, cap, seed), dtype=np.int64)


def read_external(source: str | Source, params: Mapping[str, Any] | None = None, *,
                  preprocessing: PreprocessConfig | Mapping[str, Any], classes: Sequence[str],
                  name: str | None = None, one_class: str | None = None, max_windows_per_record: int | None = None,
                  normaliser: Normaliser | Mapping[str, Any] | None = None, lead: str | None = None,
                  registry: Any = None, strict: bool = False, seed: int = 0) -> ExternalSet:
    """One external test set: ``source`` (a registered name with ``params``, or a source object) as windows.

    ``preprocessing`` is used as given (:func:`external_config` derives it from a run's); labels
    index ``classes``; ``one_class`` declares a one-class database (every window must carry that
    class); ``lead`` names the external signal (see the module docstring); ``normaliser`` (fitted
    on the run's training split) scales the windows, default none (mV).
    """
    config = preprocessing if isinstance(preprocessing, PreprocessConfig) else PreprocessConfig.from_dict(preprocessing)
    classes = tuple(classes)
    if one_class is not None and one_class not in classes:
        raise ValidationError(f"one_class={one_class!r} is not one of the classes {list(classes)}")
    src = _make_source(source, params, lead, one_class, registry)
    name = name or src.name
    batch, _report = windows_from_source(src, config, classes, strict=strict, carry=_WHERE)
    labels = batch.require_labels(f"external set {name!r}")
    if one_class is not None and np.any(labels != classes.index(one_class)):
        found = sorted({classes[i] for i in np.unique(labels)})
        raise DataError(f"external set {name!r} is declared one-class {one_class!r} but holds labels {found}")
    out = _in_recordings(batch)
    out = out.select(_capped(out, out.meta["record"], max_windows_per_record, _set_seed(seed, name)))
    norm = normaliser if isinstance(normaliser, Normaliser) or normaliser is None else Normaliser.from_dict(normaliser)
    if norm is not None and norm.kind != "none":
        out = out.with_signals(norm.apply(out.numpy()).astype(np.float32), units=norm.units)
    return ExternalSet(name, out, one_class)


def _run_lead(train: Any, config: PreprocessConfig) -> str | None:
    """The run's single lead name (None when the run uses several leads)."""
    leads = tuple(getattr(train, "leads", None) or (() if config.leads == ("first",) else config.leads))
    return leads[0] if len(leads) == 1 else None


def load_external_sets(recipe: Any, registry: Any, *, run_data: RunData | None = None,
                       preprocessing: PreprocessConfig | Mapping[str, Any] | None = None,
                       normaliser: Normaliser | Mapping[str, Any] | None = None,
                       classes: Sequence[str] | None = None, seed: int | None = None) -> tuple[ExternalSet, ...]:
    """The recipe's ``[[evaluation.external]]`` sets, read like ``run_data`` (see the module docstring).

    ``run_data`` (what :func:`augframe.data.prepare.prepare_recipe_data` returned) gives the
    preprocessing, the fitted normaliser, the classes and the lead; the keyword arguments replace
    them (``preprocessing`` and ``classes`` are required without ``run_data``). ``seed`` defaults to
    the recipe's run seed.
    """
    entries = recipe.evaluation.external
    if not entries:
        return ()
    info = dict(run_data.info) if run_data is not None else {}
    train = run_data.train if run_data is not None else None
    run_pre = preprocessing if preprocessing is not None else info.get("preprocessing")
    if not isinstance(run_pre, (PreprocessConfig, Mapping)):
        raise RecipeError("evaluation.external sets are read with the run's preprocessing, but the run has none; "
                          "add a [data.preprocessing] table (fs, window_s, leads, ...)")
    norm = normaliser if normaliser is not None else info.get("normaliser")
    classes = tuple(classes or getattr(train, "class_names", None) or recipe.data.classes or ())
    if not classes:
        raise RecipeError("evaluation.external needs the run's classes; set data.classes, e.g. [\"N\", \"A\"]")
    seed = recipe.run.seed if seed is None else seed
    out = []
    for i, x in enumerate(entries):
        where = f"evaluation.external[{i}]"
        config, strict = external_config(run_pre, x.preprocessing, where=f"{where}.preprocessing")
        lead = _run_lead(train, config)
        try:
            ext = read_external(x.source, x.params, preprocessing=config, classes=classes, name=x.name,
                                one_class=x.one_class, max_windows_per_record=x.max_windows_per_record,
                                normaliser=norm, lead=lead, registry=registry, strict=strict, seed=seed)
        except (DataError, ValidationError) as exc:
            raise type(exc)(f"{where} ({x.name!r}): {exc}") from exc
        _check_like_run(ext.batch, train, where)
        out.append(ext)
    return tuple(out)


def _check_like_run(batch: ECGBatch, train: Any, where: str) -> None:
    """Raise DataError unless the external windows have the run's fs, leads and window length."""
    if train is None:
        return
    data = as_windows(train)
    run_samples = int(np.asarray(data[0][0]).shape[-1]) if len(data) else batch.n_samples
    have = (batch.fs, tuple(batch.leads), batch.n_samples)
    want = (float(data.fs), tuple(data.leads), run_samples)
    if have != want:
        raise DataError(f"{where}: the external windows have (fs, leads, samples) = {have}, the run's data {want}; "
                        "check params.channel / lead_as and the preprocessing overrides")
