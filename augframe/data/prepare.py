"""From a recipe's ``[data]`` tables to training and test windows: cache, split, normalisation.

:func:`prepare_recipe_data` is what :func:`augframe.pipeline.load_data` calls. It builds (or
reuses) the memory-mapped cache of the source under the preprocessing, makes or replays a
patient-wise stratified split, fits the normalisation on the training part only and returns
lazy, normalised views of the training and test windows, plus what it did (``info``).

Without a ``[data.preprocessing]`` table the records are used as read (they must share fs,
leads and length) and only split. ``[data.preprocessing]`` takes every
:class:`~augframe.data.preprocess.PreprocessConfig` field plus ``normalise`` ("zscore", "minmax",
"robust", "none"), ``cache`` (default true; false keeps the windows in RAM), ``cache_dir``,
``workers`` and ``strict``. ``[data.split]`` takes ``k`` (folds; none given = no test set) and
``fold`` (which one is the test set, default 0), or ``test_fraction`` (k = round(1 /
test_fraction); 0 = no test set), ``by`` ("patient" or "record") and ``file``: a split JSON to
replay, written there on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from augframe.data.batches import windows_from_source
from augframe.data.cache import WindowCache, build_cache, fit_normaliser
from augframe.data.fingerprint import signals_sha256, windows_identity
from augframe.data.normalise import Normaliser
from augframe.data.preprocess import PreprocessConfig
from augframe.data.splits import Split, make_split
from augframe.errors import DataError, RecipeError, ValidationError, suggest
from augframe.protocols import Source
from augframe.signals import ECGBatch

PREPROCESS_EXTRAS = ("normalise", "cache", "cache_dir", "workers", "strict")
SPLIT_KEYS = ("k", "fold", "test_fraction", "by", "file")


def parse_preprocessing(table: Mapping[str, Any]) -> tuple[PreprocessConfig, dict[str, Any]]:
    """The PreprocessConfig and the extra settings of a ``[data.preprocessing]`` table."""
    table = dict(table)
    extras = {k: table.pop(k) for k in PREPROCESS_EXTRAS if k in table}
    valid = [f.name for f in attrs.fields(PreprocessConfig)] + list(PREPROCESS_EXTRAS)
    for key in table:
        if key not in valid:
            raise RecipeError(f"unknown key data.preprocessing.{key}{suggest(key, valid)}")
    try:
        config = PreprocessConfig(**table)
    except (ValidationError, TypeError, ValueError) as exc:
        raise RecipeError(f"data.preprocessing: {exc}") from exc
    kind = extras.get("normalise", "none")
    if kind not in ("zscore", "minmax", "robust", "none", None):
        raise RecipeError(f"data.preprocessing.normalise = {kind!r}; use zscore, minmax, robust or none")
    return config, extras


def check_data_tables(preprocessing: Mapping[str, Any], split: Mapping[str, Any]) -> None:
    """Raise RecipeError for what ``prepare_recipe_data`` would refuse in these tables (used by
    ``augframe recipe check``, so a recipe that checks clean is one that runs)."""
    _split_settings(split)
    if preprocessing:
        parse_preprocessing(preprocessing)


def _split_settings(split: Mapping[str, Any]) -> dict[str, Any]:
    for key in split:
        if key not in SPLIT_KEYS:
            raise RecipeError(f"unknown key data.split.{key}{suggest(key, SPLIT_KEYS)}")
    for key in ("k", "fold"):
        if key in split and (isinstance(split[key], bool) or not isinstance(split[key], int)):
            raise RecipeError(f"data.split.{key} = {split[key]!r} must be an integer")
    if "test_fraction" in split and (isinstance(split["test_fraction"], bool)
                                     or not isinstance(split["test_fraction"], (int, float))):
        raise RecipeError(f"data.split.test_fraction = {split['test_fraction']!r} must be a number, e.g. 0.2")
    if "file" in split and not isinstance(split["file"], str):
        raise RecipeError(f"data.split.file = {split['file']!r} must be a path string")
    out = {"k": int(split.get("k", 0)), "fold": int(split.get("fold", 0)), "by": split.get("by", "patient"),
           "file": split.get("file")}
    if "test_fraction" in split:
        if "k" in split:
            raise RecipeError("data.split: give either k or test_fraction, not both")
        frac = float(split["test_fraction"])
        if not 0.0 <= frac < 1.0:
            raise RecipeError(f"data.split.test_fraction = {frac} must be in [0, 1)")
        out["k"] = 0 if frac == 0.0 else max(2, int(round(1.0 / frac)))
    if out["by"] not in ("patient", "record"):
        raise RecipeError(f"data.split.by = {out['by']!r}; use 'patient' or 'record'")
    if "fold" in split and not out["k"]:
        raise RecipeError("data.split.fold needs k (or test_fraction) to say how many folds there are")
    if out["k"] and not 0 <= out["fold"] < out["k"]:
        raise RecipeError(f"data.split.fold = {out['fold']} must lie in 0..{out['k'] - 1}")
    return out


def _split(groups: np.ndarray, labels: np.ndarray, settings: dict[str, Any], seed: int) -> Split:
    path = Path(settings["file"]) if settings["file"] else None
    if path is not None and path.exists():
        split = Split.load(path)
        if split.k != settings["k"]:
            raise RecipeError(f"data.split.file {path} holds a {split.k}-fold split but k = {settings['k']}")
        return split
    try:
        split = make_split(groups, labels, k=settings["k"], seed=seed, by=settings["by"])
    except ValidationError as exc:
        raise RecipeError(f"data.split: {exc}") from exc
    if path is not None:
        split.save(path)
    return split


@attrs.frozen
class RunData:
    """What the data stage hands on: train (and optional test) windows and how they were made.

    Unpacks and indexes as the pair ``(train, test)``: ``train, test = run_data``.
    """

    train: Any
    test: Any | None = None
    #: the content identity of every window the run's data holds (what a bank is bound to)
    fingerprint: str = ""
    info: Mapping[str, Any] = attrs.field(factory=dict)
    #: every window the source gave, in every fold (records a split file leaves out included), normalised
    #: like ``train``: what a near-copy gate guards when no window of the data may be reproduced.
    all_windows: Any | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.train, self.test))

    def __getitem__(self, i: int) -> Any:
        return (self.train, self.test)[i]


def prepare_recipe_data(source: Source, *, preprocessing: Mapping[str, Any], split: Mapping[str, Any],
                        classes: Sequence[str] | None, seed: int) -> Any:
    """Cache -> split -> normaliser fitted on train -> (train, test) views; see the module docstring."""
    settings = _split_settings(split)
    if not preprocessing:
        return _as_read(source, classes, settings, seed)
    config, extras = parse_preprocessing(preprocessing)
    classes = tuple(classes) if classes else (getattr(source, "classes", None) or getattr(source, "class_names", None))
    if not classes:
        raise RecipeError("data.classes is not set and the source does not name its classes; "
                          "give data.classes, e.g. [\"N\", \"A\"]")
    classes = tuple(classes)
    strict = bool(extras.get("strict", False))
    if extras.get("cache", True):
        root = extras.get("cache_dir")
        data: Any = build_cache(source, config, classes=classes, root=os.fspath(root) if root else None,
                                strict=strict, workers=int(extras.get("workers", 1)))
        patients, records, labels = data.patient_ids, data.record_ids, data.labels
        report, fingerprint = data.report, data.content
    else:
        data, report = windows_from_source(source, config, classes, strict=strict)
        patients, records, labels = data.meta["patient"], data.meta["record"], data.labels
        fingerprint = _identity(data)
    groups = np.asarray(records if settings["by"] == "record" else patients).astype(str)
    if settings["k"]:
        sp = _split(groups, labels, settings, seed)
        fold = sp.fold(settings["fold"], groups, val=False)
        train_idx, test_idx = fold.train, fold.test
    else:
        sp, train_idx, test_idx = None, np.arange(len(labels)), None
    kind = extras.get("normalise") or "none"
    if isinstance(data, WindowCache):
        norm = fit_normaliser(data, train_idx, kind, seed=seed)
        train, everything = data.view(train_idx, norm), data.view(None, norm)
        test = None if test_idx is None else data.view(test_idx, norm)
    else:
        norm = Normaliser.fit(kind, [data.signals[train_idx]], seed=seed)
        train, everything = _normalised(data.select(train_idx), norm), _normalised(data, norm)
        test = None if test_idx is None else _normalised(data.select(test_idx), norm)
    info = {
        "preprocessing": config.to_dict(), "normaliser": norm.to_dict(),
        "split": None if sp is None else {**sp.to_dict(), "fold": settings["fold"]},
        "cache": str(data.path) if isinstance(data, WindowCache) else None,
        "records_used": report.records_used, "windows_kept": report.windows_kept,
        "windows_rejected": report.windows_rejected, "problems": report.counts(),
    }
    return RunData(train, test, fingerprint, info, everything)


def _as_read(source: Source, classes: Sequence[str] | None, settings: dict[str, Any], seed: int) -> Any:
    """No ``[data.preprocessing]``: records stacked as read (equal fs, leads, length), then split."""
    batch = records_to_batch(source.records(), classes, what=f"source {source.name!r}")
    groups = np.asarray(batch.ids if settings["by"] == "record" else batch.meta["patient_id"]).astype(str)
    info: dict[str, Any] = {"preprocessing": "none (records used as read)", "split": None}
    if not settings["k"]:
        return RunData(batch, None, _identity(batch), info, batch)
    sp = _split(groups, batch.require_labels("data.split"), settings, seed)
    fold = sp.fold(settings["fold"], groups, val=False)
    info["split"] = {**sp.to_dict(), "fold": settings["fold"]}
    return RunData(batch.select(fold.train), batch.select(fold.test), _identity(batch), info, batch)


def _identity(batch: ECGBatch) -> str:
    """The content identity of windows held in memory (the same value a window cache records)."""
    records = batch.meta["record"] if "record" in batch.meta else batch.ids
    patients = batch.meta["patient"] if "patient" in batch.meta else batch.meta.get("patient_id", records)
    return windows_identity(signals_sha256(batch.numpy()), batch.labels, records, patients, batch.fs, batch.leads)


def _normalised(batch: Any, norm: Normaliser) -> Any:
    if norm.kind == "none":
        return batch
    return batch.with_signals(norm.apply(batch.numpy()).astype(np.float32), units=norm.units)


def records_to_batch(records: Any, classes: Sequence[str] | None = None, what: str = "source") -> ECGBatch:
    """Stack records of equal fs, leads and length into one labelled ECGBatch."""
    recs = list(records)
    if not recs:
        raise DataError(f"{what} yielded no records; check its path and parameters")
    first = recs[0]
    for r in recs[1:]:
        for field in ("fs", "leads"):
            if getattr(r, field) != getattr(first, field):
                raise DataError(f"{what}: record {r.id!r} has {field}={getattr(r, field)!r}, record {first.id!r} has "
                                f"{getattr(first, field)!r}; add [data.preprocessing] to resample / select leads")
        if r.signal.shape != first.signal.shape:
            raise DataError(f"{what}: record {r.id!r} has shape {r.signal.shape}, {first.id!r} has "
                            f"{first.signal.shape}; add [data.preprocessing] windowing")
    names = tuple(classes) if classes else tuple(sorted({r.label for r in recs if r.label is not None}))
    if classes:
        recs = [r for r in recs if r.label in names]
        if not recs:
            raise DataError(f"{what}: no record has a label in data.classes = {list(names)}")
    labels = np.array([names.index(r.label) if r.label in names else -1 for r in recs], dtype=np.int64)
    meta = {"patient_id": np.array([r.patient_id if r.patient_id is not None else r.id for r in recs], dtype=object)}
    return ECGBatch(np.stack([np.asarray(r.signal, np.float32) for r in recs]), first.fs, first.leads,
                    labels=labels, class_names=names, ids=[r.id for r in recs], meta=meta)
