"""Registers the data sources with augframe's plugin registry (entry point ``sources``).

Factories import their reader on first use, so discovering plugins stays cheap.
"""

from __future__ import annotations

from typing import Any

import augframe


def _cinc2017(**params: Any) -> Any:
    from augframe.data.cinc2017 import CinC2017Source

    return CinC2017Source(**params)


def _ptbxl(**params: Any) -> Any:
    from augframe.data.ptbxl import PTBXLSource

    return PTBXLSource(**params)


def _mimic(**params: Any) -> Any:
    from augframe.data.mimic import MIMICIVECGSource

    return MIMICIVECGSource(**params)


def _wfdb(**params: Any) -> Any:
    from augframe.data.wfdb_source import WFDBSource

    return WFDBSource(**params)


def _arrays(**params: Any) -> Any:
    from augframe.data.arrays import ArraySource

    return ArraySource(**params)


def _demo(**params: Any) -> Any:
    from augframe.data.demo import DemoSource

    return DemoSource(**params)


@augframe.hookimpl
def augframe_register_sources(register: Any) -> None:
    register("cinc2017", _cinc2017, description="PhysioNet/CinC 2017 single-lead AF layout (REFERENCE.csv)")
    register("ptbxl", _ptbxl, description="PTB-XL: ptbxl_database.csv scp_codes -> N/A/O, 12 leads")
    register("mimic-iv-ecg", _mimic, description="MIMIC-IV-ECG: record_list + machine report labels")
    register("wfdb", _wfdb, description="any WFDB records in a folder or list, labels from a CSV")
    register("demo", _demo, description="the CinC 2017 N/A demo sample shipped with augframe (no download)")
    register("arrays", _arrays, description="npz (X, y) / npy / csv arrays with labels")
