"""Choosing which records a source yields: by class, and a seeded cap per class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from augframe.errors import ValidationError


def as_classes(classes: Sequence[str] | str | None) -> tuple[str, ...] | None:
    if classes is None:
        return None
    if isinstance(classes, str):
        classes = (classes,)
    out = tuple(str(c) for c in classes)
    if not out or len(set(out)) != len(out):
        raise ValidationError(f"classes={list(out)} must be a non-empty list of distinct labels")
    return out


def limit_per_class(ids: Sequence[str], labels: Sequence[str | None], limit: int | None,
                    seed: int) -> list[str]:
    """At most ``limit`` ids per label, drawn with ``seed``; the result keeps the input order."""
    if limit is None:
        return list(ids)
    if int(limit) < 1:
        raise ValidationError(f"limit_per_class={limit} must be a positive number of records (or None for all)")
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray([str(lab) for lab in labels], dtype=object)
    keep = np.zeros(len(ids), dtype=bool)
    for lab in sorted(set(labels_arr.tolist())):
        idx = np.flatnonzero(labels_arr == lab)
        if len(idx) > limit:
            idx = rng.choice(idx, size=int(limit), replace=False)
        keep[idx] = True
    return [i for i, k in zip(ids, keep) if k]
