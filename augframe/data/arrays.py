"""Signals held in arrays: ``.npz`` (incl. the reference's X/y layout), ``.npy`` and ``.csv``.

* ``.npz``: key ``X`` (``[N, samples]`` or ``[N, leads, samples]``) and ``y`` (``[N]`` class
  indices), optionally ``ids`` and ``patient``; the DiffStyleTS ``{train,val,test}_data.npz``
  files are this layout (X float32 [N, 2500], y int64, 0 = normal, 1 = AF, lead II, 250 Hz,
  already min-max normalised: declare ``units="normalised"`` and turn cleaning and the quality
  gate off for them, since both expect millivolts).
* ``.npy``: the signal array; labels from ``labels`` (a second ``.npy`` path or a sequence).
  Opened memory-mapped, so a large file is read row by row.
* ``.csv``: one ECG per row, a label column (``label_column``), an optional id column, and
  the samples in the remaining columns.

``class_names[y]`` gives each record's label string (``("N", "A")`` by default).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from augframe.data.fingerprint import content_hash, digest
from augframe.data.problems import Problem
from augframe.errors import DataError, ValidationError
from augframe.protocols import Record


@attrs.define
class ArraySource:
    """ECGs from one array file (see the module docstring for layouts)."""

    path: Path = attrs.field(converter=Path)
    fs: float = attrs.field(converter=float, kw_only=True)
    leads: tuple[str, ...] = attrs.field(default=("II",), converter=lambda v: (v,) if isinstance(v, str) else tuple(v))
    class_names: tuple[str, ...] = attrs.field(default=("N", "A"), converter=tuple)
    labels: Any = None
    label_column: str = "label"
    id_column: str | None = None
    units: str = "mV"
    problems: list[Problem] = attrs.field(factory=list, init=False)

    name = "arrays"

    def __attrs_post_init__(self) -> None:
        if not self.path.exists():
            raise DataError(f"array file {self.path} does not exist")
        if self.path.suffix.lower() not in (".npz", ".npy", ".csv"):
            raise DataError(f"array file {self.path} is not .npz, .npy or .csv")
        if not self.fs > 0:
            raise ValidationError(f"arrays fs={self.fs}: give the sampling rate of the stored signals")

    def _load(self) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, list[str] | None]:
        """(signals, labels, ids, patients); signals may be a memmap."""
        suffix = self.path.suffix.lower()
        try:
            if suffix == ".npz":
                with np.load(self.path, allow_pickle=False) as z:
                    if "X" not in z:
                        raise DataError(f"{self.path} has keys {sorted(z.files)}; expected 'X' (and 'y')")
                    x = z["X"]
                    y = z["y"] if "y" in z else None
                    ids = [str(i) for i in z["ids"]] if "ids" in z else None
                    pat = [str(i) for i in z["patient"]] if "patient" in z else None
                return x, y, ids, pat
            if suffix == ".npy":
                x = np.load(self.path, mmap_mode="r", allow_pickle=False)
                y = self.labels
                if isinstance(y, (str, os.PathLike)):
                    y = np.load(Path(y), allow_pickle=False)
                return x, None if y is None else np.asarray(y), None, None
            import pandas as pd

            df = pd.read_csv(self.path)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"cannot read {self.path}: {type(exc).__name__}: {exc}") from exc
        y = df.pop(self.label_column).to_numpy() if self.label_column in df.columns else None
        ids = [str(v) for v in df.pop(self.id_column)] if self.id_column and self.id_column in df.columns else None
        try:
            x = df.to_numpy(dtype=np.float32)
        except ValueError as exc:
            raise DataError(f"{self.path}: sample columns must be numeric ({exc}); "
                            f"name the label column with label_column (now {self.label_column!r})") from exc
        return x, y, ids, None

    def _label(self, value: Any) -> str | None:
        if isinstance(value, str):
            return value
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not np.isfinite(value) or value != int(value):
            raise DataError(f"{self.path}: label {value!r} is not a whole class index; labels must be integers "
                            f"indexing class_names {self.class_names} (-1 = unlabelled) or class-name strings")
        i = int(value)
        if i < 0:
            return None
        if i >= len(self.class_names):
            raise DataError(f"{self.path}: label {i} has no name in class_names {self.class_names}")
        return self.class_names[i]

    def records(self) -> Iterator[Record]:
        self.problems = []
        x, y, ids, patients = self._load()
        if x.ndim == 2:
            x = x[:, None, :]
        if x.ndim != 3:
            raise DataError(f"{self.path}: signals have shape {x.shape}; expected [N, samples] or [N, leads, samples]")
        if x.dtype.kind not in "iuf":
            raise DataError(f"{self.path}: signals have dtype {x.dtype}; store real-valued numbers (complex, "
                            "boolean and text arrays are refused, not cast)")
        if x.shape[1] != len(self.leads):
            raise DataError(f"{self.path}: {x.shape[1]} lead(s) but leads={list(self.leads)}; name each lead")
        if y is not None and len(y) != len(x):
            raise DataError(f"{self.path}: {len(y)} labels for {len(x)} signals")
        stem = self.path.stem
        for i in range(len(x)):
            rid = ids[i] if ids is not None else f"{stem}:{i}"
            sig = np.asarray(x[i], dtype=np.float32)
            yield Record(id=rid, signal=sig, fs=self.fs, leads=self.leads,
                         label=None if y is None else self._label(y[i]),
                         patient_id=None if patients is None else patients[i],
                         meta={"record": rid, "row": i, "units": self.units})

    def fingerprint(self) -> str:
        labels = self.labels
        if isinstance(labels, (str, os.PathLike)):
            labels = content_hash(Path(labels))
        elif labels is not None:
            labels = digest([str(v) for v in np.asarray(labels).tolist()])
        return digest({"source": self.name, "file": content_hash(self.path), "fs": self.fs, "leads": self.leads,
                       "classes": self.class_names, "labels": labels, "label_column": self.label_column,
                       "id_column": self.id_column, "units": self.units})
