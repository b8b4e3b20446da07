"""Seeded, stratified (and patient/record-grouped) hold-out splits."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from augframe.errors import ValidationError


def holdout(labels: np.ndarray, fraction: float, seed: int, groups: np.ndarray | None = None,
            what: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """(rest, held-out) index arrays with about ``fraction`` held out, stratified by class, grouped if given."""
    if not 0 < fraction < 1:
        raise ValidationError(f"hold-out fraction {fraction} must lie in (0, 1)")
    k = max(2, int(round(1 / fraction)))
    idx = np.arange(len(labels))
    counts = np.bincount(labels) if len(labels) else np.zeros(0, int)
    units = counts if groups is None else np.array([len(np.unique(groups[labels == c])) for c in range(len(counts))])
    if len(units) == 0 or units[units > 0].min() < 2:
        raise ValidationError(f"the {what} set needs at least 2 ECGs (patients) per class to hold some out; "
                              f"got {units.tolist()}")
    k = int(min(k, units[units > 0].min()))
    if groups is None:
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed % 2**32)
        rest, held = next(splitter.split(idx, labels))
    else:
        splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed % 2**32)
        rest, held = next(splitter.split(idx, labels, groups))
    return rest, held
