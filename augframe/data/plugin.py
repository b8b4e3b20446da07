"""Registers the data sources with augframe's plugin registry (entry point ``sources``).

Factories import their reader on first use, so discovering plugins stays cheap.
"""

from __future__ import annotations


import augframe
from augframe.plugins import lazy


@augframe.hookimpl
def augframe_register_sources(register: augframe.Register) -> None:
    register("cinc2017", lazy("augframe.data.cinc2017.CinC2017Source"),
             description="PhysioNet/CinC 2017 single-lead AF layout (REFERENCE.csv)")
    register("ptbxl", lazy("augframe.data.ptbxl.PTBXLSource"),
             description="PTB-XL: ptbxl_database.csv scp_codes -> N/A/O, 12 leads")
    register("mimic-iv-ecg", lazy("augframe.data.mimic.MIMICIVECGSource"),
             description="MIMIC-IV-ECG: record_list + machine report labels")
    register("wfdb", lazy("augframe.data.wfdb_source.WFDBSource"),
             description="any WFDB records in a folder or list, labels from a CSV")
    register("wfdb-rhythm", lazy("augframe.data.rhythm_episodes.WFDBRhythmSource"),
             description="WFDB rhythm episodes ('+' annotations, (AFIB/(N ...) or one-class records")
    register("demo", lazy("augframe.data.demo.DemoSource"),
             description="the CinC 2017 N/A demo sample shipped with augframe (no download)")
    register("arrays", lazy("augframe.data.arrays.ArraySource"),
             description="npz (X, y) / npy / csv arrays with labels")
