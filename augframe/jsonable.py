"""Plain JSON data from what augframe objects hold: the one sanitiser every JSON writer uses."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def jsonable(value: Any, *, finite: bool = False, fallback: Callable[[Any], Any] | None = None) -> Any:
    """``value`` as JSON data: dicts with str keys, lists, str, int, float, bool, None.

    numpy scalars and arrays become Python numbers and lists, paths strings, tuples and sets lists.
    ``finite`` turns NaN and infinities into None (strict JSON, e.g. for browsers). Any other type
    goes through ``fallback`` (e.g. ``str`` for free-form facts a plugin reports); without one it
    is a TypeError, since silently writing ``repr`` text would hide a bug.
    """
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    if isinstance(value, float):
        return None if finite and not math.isfinite(value) else value
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, finite=finite, fallback=fallback) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, finite=finite, fallback=fallback) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if fallback is None:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    return jsonable(fallback(value), finite=finite)
