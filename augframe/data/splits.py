"""Patient-wise, label-stratified k-fold splits with independent test folds, saved as JSON.

Groups are patients (records where a source has no patient id), so no patient's windows are in
two parts of a split. Folds come from scikit-learn's ``StratifiedGroupKFold`` (shuffled with the
seed), which balances label proportions across folds while keeping groups whole. Fold ``i`` uses
fold ``i`` as its test set, fold ``i+1 (mod k)`` as validation and the rest for training, so the
k test sets are disjoint and together cover every window once (unlike the reference, whose
folds shared one test set).

The split stores each group's fold; saved next to a run, it replays the same partition on the
same cache (loading checks that every group of the data is known to the split).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from augframe.atomic import write_json
from augframe.errors import DataError, ValidationError

SPLIT_FORMAT = 1


@attrs.frozen
class FoldIndices:
    """Window indices of one fold's training, validation and test parts."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


#: Fold number of a group that is in no part of any fold (e.g. the records a shipped model trained on).
EXCLUDED = -1


@attrs.frozen
class Split:
    """Fold number of every group (patient or record), with how it was made.

    A group whose fold is :data:`EXCLUDED` (-1) is left out of training, validation and test alike.
    """

    k: int
    seed: int
    group_fold: Mapping[str, int]
    by: str = "patient"
    label_counts: Mapping[str, list[int]] = attrs.field(factory=dict)

    def folds_of(self, groups: Sequence[str] | np.ndarray) -> np.ndarray:
        """Fold number of each window, given its group; an unknown group raises (wrong data for this split)."""
        groups = np.asarray(groups).astype(str)
        uniq, inv = np.unique(groups, return_inverse=True)
        missing = [g for g in uniq if g not in self.group_fold]
        if missing:
            raise DataError(f"split does not know {len(missing)} group(s) of this data (e.g. {missing[:3]}); "
                            "it was made for other data: make a new split")
        return np.array([self.group_fold[g] for g in uniq], dtype=np.int64)[inv]

    def fold(self, i: int, groups: Sequence[str] | np.ndarray, *, val: bool = True) -> FoldIndices:
        """Indices of fold ``i``: test = fold i, val = fold i+1 (mod k) if ``val``, train = the rest."""
        if not 0 <= i < self.k:
            raise ValidationError(f"fold {i} is outside 0..{self.k - 1}")
        f = self.folds_of(groups)
        is_val = (f == (i + 1) % self.k) if val else np.zeros(len(f), dtype=bool)
        return FoldIndices(train=np.flatnonzero((f != i) & ~is_val & (f != EXCLUDED)),
                           val=np.flatnonzero(is_val), test=np.flatnonzero(f == i))

    def to_dict(self) -> dict[str, Any]:
        return {"format": SPLIT_FORMAT, "k": self.k, "seed": self.seed, "by": self.by,
                "label_counts": {str(k): list(v) for k, v in self.label_counts.items()},
                "group_fold": dict(sorted(self.group_fold.items()))}

    def save(self, path: str | os.PathLike[str]) -> Path:
        write_json(path, self.to_dict(), sort_keys=True)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Split:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read split {path}: {exc}") from exc
        if d.get("format") != SPLIT_FORMAT:
            raise DataError(f"{path} is split format {d.get('format')}; this augframe reads {SPLIT_FORMAT}")
        return cls(k=int(d["k"]), seed=int(d["seed"]), by=d.get("by", "patient"),
                   group_fold={str(g): int(f) for g, f in d["group_fold"].items()},
                   label_counts=d.get("label_counts", {}))


def make_split(groups: Sequence[str] | np.ndarray, labels: Sequence[int] | np.ndarray, *, k: int = 5,
               seed: int = 0, by: str = "patient") -> Split:
    """A stratified group k-fold split of windows (one group and one label per window)."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.asarray(groups).astype(str)
    labels = np.asarray(labels)
    if len(groups) != len(labels):
        raise ValidationError(f"make_split: {len(groups)} groups for {len(labels)} labels")
    n_groups = len(np.unique(groups))
    if not 2 <= k <= n_groups:
        raise ValidationError(f"make_split: k={k} needs 2 <= k <= number of groups ({n_groups})")
    sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    group_fold: dict[str, int] = {}
    for i, (_, test) in enumerate(sgkf.split(np.zeros(len(labels)), labels, groups)):
        for g in np.unique(groups[test]):
            group_fold[str(g)] = i
    folds = np.array([group_fold[g] for g in groups])
    counts = {str(c): [int(((folds == i) & (labels == c)).sum()) for i in range(k)] for c in np.unique(labels)}
    return Split(k=k, seed=seed, group_fold=group_fold, by=by, label_counts=counts)


def split_cache(cache: Any, *, k: int = 5, seed: int = 0) -> Split:
    """Patient-wise split of a WindowCache (records stand in for missing patients at build time)."""
    by = "patient" if np.any(np.asarray(cache.patient_ids) != np.asarray(cache.record_ids)) else "record"
    return make_split(cache.patient_ids, cache.labels, k=k, seed=seed, by=by)
