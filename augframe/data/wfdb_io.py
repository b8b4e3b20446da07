"""Reading one WFDB record (.hea with .dat or .mat) into a :class:`~augframe.protocols.Record`.

``wfdb`` does the parsing. What this module adds: signals as float32 [leads, samples] in mV, lead
names mapped to the standard spelling, and failures turned into a :class:`Problem` with a kind
(``unreadable``, ``truncated``) instead of an exception from deep inside wfdb. Truncation is found
from the header before reading: a signal file smaller than ``byte offset + samples x channels x
bytes per sample`` is truncated.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from augframe.data.problems import Problem
from augframe.protocols import Record
from augframe.signals import STANDARD_LEADS

#: Bytes per sample of the WFDB storage formats.
_FMT_BYTES = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3, "311": 4 / 3}
_UNIT_SCALE = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "v": 1e3, "nu": 1.0, "": 1.0}
_LEAD_LOOKUP = {n.lower(): n for n in STANDARD_LEADS}


def lead_name(raw: str, *, single_lead_as: str | None = None) -> str:
    """Standard spelling of a header's signal name ('AVR' -> 'aVR'); other names are kept as given.

    ``single_lead_as`` renames a generic name ('ECG') for single-lead devices, e.g. CinC 2017's
    AliveCor recordings, which approximate lead I.
    """
    key = raw.strip().lower()
    if key in _LEAD_LOOKUP:
        return _LEAD_LOOKUP[key]
    if single_lead_as is not None:
        return single_lead_as
    return raw.strip()


class RecordReadError(Exception):
    """Internal: carries the Problem describing why a record could not be read."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _check_sizes(header: Any, directory: Path, record_id: str) -> None:
    """Raise RecordReadError('truncated'/'missing-file') when a signal file is too short or absent."""
    need: dict[str, float] = {}
    offsets: dict[str, int] = {}
    for fname, fmt, offset in zip(header.file_name, header.fmt, header.byte_offset or [None] * header.n_sig):
        per = _FMT_BYTES.get(str(fmt))
        if per is None:
            return  # an exotic format: let wfdb judge it
        need[fname] = need.get(fname, 0.0) + per * header.sig_len
        offsets[fname] = int(offset or 0)
    for fname, nbytes in need.items():
        path = directory / fname
        if not path.exists():
            raise RecordReadError(Problem(record_id, "missing-file", f"{path.name} is missing"))
        size = path.stat().st_size
        expected = offsets[fname] + int(np.ceil(nbytes))
        if size < expected:
            raise RecordReadError(Problem(
                record_id, "truncated", f"{path.name} has {size} bytes, its header needs {expected}"))


def read_wfdb(path: str | os.PathLike[str], *, record_id: str | None = None, label: str | None = None,
              statements: Mapping[str, float] | None = None, patient_id: str | None = None,
              meta: Mapping[str, Any] | None = None, single_lead_as: str | None = None,
              channels: Sequence[int] | None = None) -> Record:
    """Read the WFDB record at ``path`` (without extension); failures raise RecordReadError."""
    import wfdb

    path = Path(path)
    rid = record_id or path.name
    if not path.with_suffix(".hea").exists():
        raise RecordReadError(Problem(rid, "missing-file", f"{path.with_suffix('.hea').name} is missing"))
    try:
        header = wfdb.rdheader(str(path))
    except Exception as exc:  # wfdb raises many types on a bad header
        raise RecordReadError(Problem(rid, "unreadable", f"header: {type(exc).__name__}: {exc}")) from exc
    if getattr(header, "n_seg", None):
        raise RecordReadError(Problem(rid, "unreadable", "multi-segment records are not supported"))
    if not header.sig_len or header.n_sig == 0:
        raise RecordReadError(Problem(rid, "unreadable", "header declares no samples or no signals"))
    _check_sizes(header, path.parent, rid)
    try:
        rec = wfdb.rdrecord(str(path), channels=list(channels) if channels is not None else None)
    except Exception as exc:
        raise RecordReadError(Problem(rid, "unreadable", f"{type(exc).__name__}: {exc}")) from exc
    sig = np.asarray(rec.p_signal, dtype=np.float64).T
    scale = np.array([_UNIT_SCALE.get(str(u).strip().lower(), 1.0) for u in rec.units])[:, None]
    names = [lead_name(n, single_lead_as=single_lead_as if rec.n_sig == 1 else None) for n in rec.sig_name]
    return Record(
        id=rid,
        signal=(sig * scale).astype(np.float32),
        fs=float(rec.fs),
        leads=tuple(names),
        label=label,
        statements=dict(statements or {}),
        patient_id=patient_id,
        meta=dict(meta or {}),
    )
