"""The one progress bar: tqdm, shown on interactive terminals unless asked otherwise."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", enabled: bool | None = None) -> Any:
    """A tqdm bar over ``iterable`` (or a manual one: ``update(n)``, ``close()``).

    ``enabled=None`` shows it only on an interactive terminal outside CI; a hidden bar still
    iterates and accepts ``update``/``close``, so callers never branch on it.
    """
    if enabled is None:
        enabled = sys.stderr.isatty() and not os.environ.get("CI")
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, disable=not enabled)
