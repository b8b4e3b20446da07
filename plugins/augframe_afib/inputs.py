"""Checks on evaluator inputs, run before any training starts, and the real/synthetic linkage.

A mismatched label set, an empty or one-class synthetic set or too few ECGs for k folds are
caught here with a message that names the input and the fix, instead of surfacing as a crash
(or a silently meaningless number) an hour into a run.
"""

from __future__ import annotations

import hashlib

import numpy as np

from augframe.errors import ValidationError
from augframe.signals import ECGBatch

GROUP_KEYS = ("patient_id", "patient", "subject_id")
RECORD_KEYS = ("record_id", "record")
SOURCE_KEYS = ("source_id", "source_record", "record_id")


def check_labelled(batch: ECGBatch, what: str) -> np.ndarray:
    if len(batch) == 0:
        raise ValidationError(f"the {what} set is empty; pass at least one labelled ECG per class")
    if batch.labels is None:
        raise ValidationError(f"the {what} set has no labels; evaluators need class-index labels (ECGBatch.labels)")
    if batch.labels.ndim != 1:
        raise ValidationError(
            f"the {what} set has multi-hot labels {batch.labels.shape}; these evaluators need one class index per ECG"
        )
    if np.any(batch.labels < 0):
        raise ValidationError(f"the {what} set has {int(np.sum(batch.labels < 0))} unlabelled ECGs (-1); drop them first")
    return batch.labels


def check_compatible(real: ECGBatch, synthetic: ECGBatch) -> tuple[str, ...]:
    """Same class names, sampling rate, leads and length; every class present in both sets."""
    y_real = check_labelled(real, "real")
    y_syn = check_labelled(synthetic, "synthetic")
    if real.class_names != synthetic.class_names:
        raise ValidationError(
            f"label sets differ: real class_names {real.class_names} vs synthetic {synthetic.class_names}; "
            "map the synthetic labels onto the real classes (same names, same order) before evaluating"
        )
    names = real.class_names or tuple(str(i) for i in range(int(max(y_real.max(), y_syn.max())) + 1))
    for field in ("fs", "leads", "n_samples"):
        a, b = getattr(real, field), getattr(synthetic, field)
        if a != b:
            raise ValidationError(
                f"real and synthetic ECGs differ in {field}: {a!r} vs {b!r}; preprocess both the same way"
            )
    syn_classes = np.unique(y_syn)
    if len(syn_classes) < 2:
        only = names[int(syn_classes[0])] if len(names) > int(syn_classes[0]) else int(syn_classes[0])
        raise ValidationError(
            f"the synthetic set holds only class {only!r} ({len(y_syn)} ECGs); a classifier trained on it cannot "
            f"learn the other class(es) of {names}: generate ECGs of every class"
        )
    missing = sorted(set(range(len(names))) - set(syn_classes.tolist()))
    if missing:
        raise ValidationError(
            f"the synthetic set has no ECGs of class(es) {[names[i] for i in missing]}; generate every class of {names}"
        )
    missing_real = sorted(set(range(len(names))) - set(np.unique(y_real).tolist()))
    if missing_real:
        raise ValidationError(f"the real set has no ECGs of class(es) {[names[i] for i in missing_real]}")
    return names


def check_folds(labels: np.ndarray, k: int, what: str, names: tuple[str, ...], groups: np.ndarray | None = None,
                per_fold: int = 1) -> None:
    """Every class needs at least ``k * per_fold`` ECGs (and groups, when grouped) for k folds."""
    if k < 2:
        raise ValidationError(f"folds={k}; use at least 2 folds")
    for c in range(len(names)):
        members = labels == c
        count = int(members.sum())
        units = count if groups is None else len(np.unique(groups[members]))
        unit_word = "ECGs" if groups is None else "patients/records"
        if units < k * per_fold:
            raise ValidationError(
                f"the {what} set has {units} {unit_word} of class {names[c]!r}, too few for {k} folds "
                f"(need >= {k * per_fold}); lower folds or add data"
            )


def first_meta(batch: ECGBatch, keys: tuple[str, ...]) -> tuple[np.ndarray | None, str | None]:
    """The first of ``keys`` present in ``batch.meta``, as strings, and its name (None, None if none is)."""
    key = next((k for k in keys if k in batch.meta), None)
    return (None, None) if key is None else (np.asarray(batch.meta[key]).astype(str), key)


def groups_of(batch: ECGBatch) -> tuple[np.ndarray, str]:
    """Grouping key per ECG (patient when known, else record) and which field gave it."""
    values, key = first_meta(batch, (*GROUP_KEYS, *RECORD_KEYS))
    if values is not None:
        return values, key
    return np.asarray(batch.ids, dtype=object).astype(str), "ids"


def lineage(synthetic: ECGBatch, sources: ECGBatch | None) -> tuple[np.ndarray | None, bool]:
    """What links each synthetic ECG to its source: (groups, True) when its patient/record group is known
    (``synthetic.meta['patient_id']`` or the groups of aligned ``sources``), (source ids, False) when only
    the source's id is (``synthetic.meta['source_id']``... or the ids of ``sources``), (None, False) else."""
    groups, _ = first_meta(synthetic, GROUP_KEYS)
    if groups is not None:
        return groups, True
    ids, _ = first_meta(synthetic, SOURCE_KEYS)
    if ids is not None:
        return ids, False
    if sources is not None and len(sources) == len(synthetic):
        groups, field = groups_of(sources)
        if field != "ids":
            return groups, True
        return np.asarray(sources.ids, dtype=object).astype(str), False
    return None, False


def synthetic_groups(real: ECGBatch, synthetic: ECGBatch, sources: ECGBatch | None) -> np.ndarray | None:
    """The real group each synthetic ECG derives from, or None when the link is unknown.

    Looked up from ``synthetic.meta['patient_id']``, then a source id in ``synthetic.meta``
    (``source_id``/``source_record``/``record_id``) or the ids of ``sources``, matched against
    the real set's ids or record ids.
    """
    real_groups, _ = groups_of(real)
    source_ids, are_groups = lineage(synthetic, sources)
    if source_ids is None or are_groups:
        return source_ids
    lookup: dict[str, str] = {}
    for col in [np.asarray(real.ids, dtype=object).astype(str)] + [
            np.asarray(real.meta[k]).astype(str) for k in RECORD_KEYS if k in real.meta]:
        lookup.update(zip(col.tolist(), real_groups.tolist()))
    mapped = [lookup.get(s) for s in source_ids.tolist()]
    if any(m is None for m in mapped):
        return None
    return np.asarray(mapped, dtype=str)


def fingerprint(batch: ECGBatch) -> str:
    """A short content hash (signals, labels, ids) used to key resumable state to its inputs."""
    h = hashlib.sha256()
    x = np.ascontiguousarray(batch.numpy())
    h.update(str((x.shape, batch.fs, batch.leads, batch.class_names)).encode())
    h.update(x.tobytes())
    if batch.labels is not None:
        h.update(np.ascontiguousarray(batch.labels).tobytes())
    h.update("\x00".join(batch.ids).encode())
    return h.hexdigest()[:16]
