"""Which rhythm a class name stands for: AF, normal sinus rhythm, or neither.

Matching is on the upper-cased, stripped name. AF: "A", "AF", "AFIB", "AFIB." variants, "ATRIAL
FIBRILLATION"; normal: "N", "NORM", "NORMAL", "SR", "NSR", "SINUS RHYTHM", "NORMAL SINUS RHYTHM".
Anything else (CinC "O", "~", PTB-XL statements such as "MI") is "other": the validator then applies
no rhythm-direction evidence. ``overrides`` maps extra names to "af" / "normal" / "other".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from augframe.errors import ValidationError

AF_NAMES = frozenset({"A", "AF", "AFIB", "A-FIB", "ATRIAL FIBRILLATION", "ATRIAL_FIBRILLATION"})
NORMAL_NAMES = frozenset({"N", "NORM", "NORMAL", "SR", "NSR", "SINUS RHYTHM", "NORMAL SINUS RHYTHM", "SINUS"})
RHYTHMS = ("af", "normal", "other")


def rhythm_of(name: str, overrides: Mapping[str, str] | None = None) -> str:
    key = str(name).strip().upper()
    for k, v in (overrides or {}).items():
        if str(k).strip().upper() == key:
            if v not in RHYTHMS:
                raise ValidationError(f"class_map[{k!r}]={v!r}; use one of {RHYTHMS}")
            return v
    if key in AF_NAMES:
        return "af"
    if key in NORMAL_NAMES:
        return "normal"
    return "other"


def targets(labels: np.ndarray | None, class_names: tuple[str, ...],
            overrides: Mapping[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample (is_af, is_normal) from class indices or multi-hot rows; unlabelled -> both False."""
    if labels is None:
        return np.zeros(0, bool), np.zeros(0, bool)
    kinds = np.array([rhythm_of(c, overrides) for c in class_names] + ["other"])
    if labels.ndim == 1:
        idx = np.where((labels >= 0) & (labels < len(class_names)), labels, len(class_names))
        k = kinds[idx]
        return k == "af", k == "normal"
    hot = labels[:, : len(class_names)] > 0.5
    af = (hot & (kinds[:-1] == "af")[None, :]).any(axis=1)
    normal = (hot & (kinds[:-1] == "normal")[None, :]).any(axis=1) & ~af
    return af, normal
