"""Real ECG data: readers for PhysioNet layouts and arrays, preprocessing, splits, memory-mapped cache.

Quick start::

    from augframe.data import cinc2017_windows, demo_windows
    batch = cinc2017_windows("path/to/cinc2017", limit_per_class=50)   # ECGBatch [N, 1, 2500]
    demo = demo_windows()                                               # shipped sample, no download

Heavy pieces are imported on first use, so ``import augframe.data`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "cinc2017_windows": "augframe.data.batches",
    "windows_from_source": "augframe.data.batches",
    "normalise_batch": "augframe.data.batches",
    "demo_windows": "augframe.data.demo",
    "demo_path": "augframe.data.demo",
    "prepare_recipe_data": "augframe.data.prepare",
    "RunData": "augframe.data.prepare",
    "records_to_batch": "augframe.data.prepare",
    "DemoSource": "augframe.data.demo",
    "PreprocessConfig": "augframe.data.preprocess",
    "WindowCache": "augframe.data.cache",
    "CacheView": "augframe.data.cache",
    "build_cache": "augframe.data.cache",
    "fit_normaliser": "augframe.data.cache",
    "Split": "augframe.data.splits",
    "make_split": "augframe.data.splits",
    "split_cache": "augframe.data.splits",
    "PTBXLSource": "augframe.data.ptbxl",
    "MIMICIVECGSource": "augframe.data.mimic",
    "WFDBSource": "augframe.data.wfdb_source",
    "ArraySource": "augframe.data.arrays",
    "preprocess_record": "augframe.data.preprocess",
    "Normaliser": "augframe.data.normalise",
    "BuildReport": "augframe.data.problems",
    "Problem": "augframe.data.problems",
    "CinC2017Source": "augframe.data.cinc2017",
    "read_wfdb": "augframe.data.wfdb_io",
    "WFDBRhythmSource": "augframe.data.rhythm_episodes",
    "read_external": "augframe.data.external",
    "load_external_sets": "augframe.data.external",
}

__all__ = tuple(sorted(_EXPORTS))


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'augframe.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
