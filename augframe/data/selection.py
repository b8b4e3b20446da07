"""Choosing which records a source yields: by class, and a seeded cap per class."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from augframe.errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from augframe.data.problems import Problem


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


def choose_rows(rows: Sequence[dict], classes: tuple[str, ...] | None, limit: int | None, seed: int,
                problem_of: Callable[[dict], Problem | None] | None = None) -> tuple[list[dict], list[Problem]]:
    """Index rows a source will read: drop rows with a problem or an excluded class, cap each class.

    Rows carry at least ``id`` and ``label``; ``problem_of(row)`` names a row-specific problem.
    """
    from augframe.data.problems import Problem

    problems, chosen = [], []
    for row in rows:
        problem = problem_of(row) if problem_of is not None else None
        if problem is not None:
            problems.append(problem)
        elif classes is not None and row["label"] not in classes:
            problems.append(Problem(row["id"], "excluded-class", f"label {row['label']!r}"))
        else:
            chosen.append(row)
    keep = set(limit_per_class([r["id"] for r in chosen], [r["label"] for r in chosen], limit, seed))
    return [r for r in chosen if r["id"] in keep], problems
