"""Reading one WFDB record (.hea with .dat or .mat) into a :class:`~augframe.protocols.Record`.

``wfdb`` does the parsing. What this module adds: signals as float32 [leads, samples] in mV, lead
names mapped to the standard spelling, and failures turned into a :class:`Problem` with a kind
(``unreadable``, ``truncated``, ``missing-file``) instead of an exception from deep inside wfdb.
Truncation is found before reading, from a light look at the header (wfdb's own header parser
costs about as much as reading a short record, so it runs once, inside ``rdrecord``): a signal
file smaller than ``byte offset + samples x channels x bytes per sample`` is truncated.
"""

from __future__ import annotations

import os
import re
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
#: Common non-standard spellings in PhysioNet headers (MIT-BIH's "MLII" is a modified lead II).
LEAD_ALIASES = {"mlii": "II", "mli": "I", "mliii": "III", "d1": "I", "d2": "II", "d3": "III"}


def lead_name(raw: str, *, single_lead_as: str | None = None, aliases: Mapping[str, str] | None = None) -> str:
    """Standard spelling of a header's signal name ('AVR' -> 'aVR', 'MLII' -> 'II'); others are kept as given.

    ``single_lead_as`` renames a generic name ('ECG') for single-lead devices, e.g. CinC 2017's
    AliveCor recordings, which approximate lead I. ``aliases`` adds source-specific spellings.
    """
    key = raw.strip().lower()
    extra = {k.strip().lower(): v for k, v in (aliases or {}).items()}
    if key in extra:
        return extra[key]
    if key in _LEAD_LOOKUP:
        return _LEAD_LOOKUP[key]
    if key in LEAD_ALIASES:
        return LEAD_ALIASES[key]
    if single_lead_as is not None:
        return single_lead_as
    return raw.strip()


class RecordReadError(Exception):
    """Internal: carries the Problem describing why a record could not be read."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


_GAIN_TOKEN = re.compile(r"^([-+]?[0-9.]+(?:[eE][-+]?\d+)?)")
_FMT_TOKEN = re.compile(r"^(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?$")


def _header_layout(hea: Path) -> tuple[bool, int | None, list[tuple[str, str, int, int]]]:
    """(multi-segment?, samples per signal, [(file, format, samples per frame, byte offset)]) from a .hea.

    A light reading of the WFDB header syntax, only for the size check before wfdb parses the
    record properly; anything it cannot read leaves the judgement to wfdb.
    """
    lines = [ln.split("#", 1)[0].strip() for ln in hea.read_text(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        return False, None, []
    rec = lines[0].split()
    if "/" in rec[0]:
        return True, None, []
    n_sig = int(rec[1]) if len(rec) > 1 and rec[1].isdigit() else 0
    if len(rec) > 3 and not rec[3].isdigit():
        raise _BadHeader(f"the header declares {rec[3]!r} samples per signal; expected a whole number")
    sig_len = int(rec[3]) if len(rec) > 3 else None
    out = []
    for line in lines[1:1 + n_sig]:
        parts = line.split()
        m = _FMT_TOKEN.match(parts[1]) if len(parts) > 1 else None
        if m is None:
            return False, None, []
        gain = _GAIN_TOKEN.match(parts[2]) if len(parts) > 2 else None
        if gain is not None and not 0 < float(gain.group(1)) < float("inf"):
            raise _BadHeader(f"signal {parts[0]} declares ADC gain {gain.group(1)} (uncalibrated or impossible); "
                             "augframe needs a positive gain to give millivolts")
        out.append((parts[0], m.group(1), int(m.group(2) or 1), int(m.group(4) or 0)))
    return False, sig_len, out


class _BadHeader(ValueError):
    """Internal: a header value that wfdb would accept but that cannot describe a real record."""


def _check_mat(path: Path, offset: int, n_values: int, record_id: str) -> None:
    """A MATLAB v4 signal file (CinC/PhysioNet .mat) must hold one real matrix named 'val' of the declared
    size starting exactly at the header's byte offset; anything else would be read shifted."""
    with open(path, "rb") as f:
        head = f.read(20)
        if len(head) < 20:
            return  # the size check reports it
        mtype, rows, cols, imag, namlen = np.frombuffer(head, dtype="<i4")
        if not (0 <= mtype < 5000 and 0 < namlen < 64):
            return  # not MATLAB v4 (e.g. v5): wfdb judges it
        name = f.read(int(namlen)).rstrip(b"\0").decode("latin-1")
    problems = []
    if name != "val":
        problems.append(f"holds the variable {name!r}, not 'val'")
    if 20 + namlen != offset:
        problems.append(f"its data starts at byte {20 + namlen}, the header says {offset}")
    if imag:
        problems.append("holds complex values")
    if rows * cols != n_values:
        problems.append(f"holds {rows}x{cols} values, the header declares {n_values}")
    if problems:
        raise RecordReadError(Problem(record_id, "unreadable", f"{path.name} " + "; ".join(problems)))


def _check_sizes(hea: Path, record_id: str) -> None:
    """Raise RecordReadError for multi-segment records and for signal files that are absent or too short."""
    try:
        multi, sig_len, files = _header_layout(hea)
    except _BadHeader as exc:
        raise RecordReadError(Problem(record_id, "unreadable", str(exc))) from exc
    except (OSError, ValueError, IndexError):
        return  # wfdb will say what is wrong
    if multi:
        raise RecordReadError(Problem(record_id, "unreadable", "multi-segment records are not supported"))
    if sig_len is None:
        return  # no declared length: let wfdb judge it
    need: dict[str, float] = {}
    offsets: dict[str, int] = {}
    for fname, fmt, spf, offset in files:
        per = _FMT_BYTES.get(fmt)
        if per is None or fname == "~":
            return  # an exotic format or no declared length: let wfdb judge it
        need[fname] = need.get(fname, 0.0) + per * spf * sig_len
        offsets[fname] = offset
    for fname, nbytes in need.items():
        path = hea.parent / fname
        if not path.exists():
            raise RecordReadError(Problem(record_id, "missing-file", f"{path.name} is missing"))
        size = path.stat().st_size
        expected = offsets[fname] + int(np.ceil(nbytes))
        if size < expected:
            raise RecordReadError(Problem(
                record_id, "truncated", f"{path.name} has {size} bytes, its header needs {expected}"))
        if path.suffix.lower() == ".mat":
            n_values = sum(spf * sig_len for f, _, spf, _ in files if f == fname)
            _check_mat(path, offsets[fname], n_values, record_id)


def read_wfdb(path: str | os.PathLike[str], *, record_id: str | None = None, label: str | None = None,
              statements: Mapping[str, float] | None = None, patient_id: str | None = None,
              meta: Mapping[str, Any] | None = None, single_lead_as: str | None = None,
              channels: Sequence[int] | None = None, lead_aliases: Mapping[str, str] | None = None,
              samples: tuple[int, int] | None = None) -> Record:
    """Read the WFDB record at ``path`` (without extension); failures raise RecordReadError.

    ``samples`` = (first, end) reads only that part of the record (end exclusive, native samples),
    e.g. one rhythm episode of a long Holter recording.
    """
    import wfdb

    path = Path(path)
    rid = record_id or path.name
    hea = path.with_suffix(".hea")
    if not hea.exists():
        raise RecordReadError(Problem(rid, "missing-file", f"{hea.name} is missing"))
    if not hea.is_file():  # a FIFO or device would block the reader, a folder cannot be parsed
        raise RecordReadError(Problem(rid, "unreadable", f"{hea.name} is not a regular file"))
    _check_sizes(path.with_suffix(".hea"), rid)
    try:
        span = {} if samples is None else {"sampfrom": int(samples[0]), "sampto": int(samples[1])}
        rec = wfdb.rdrecord(str(path), channels=list(channels) if channels is not None else None, **span)
    except Exception as exc:  # wfdb raises many types on a bad header or signal file
        raise RecordReadError(Problem(rid, "unreadable", f"{type(exc).__name__}: {exc}")) from exc
    if getattr(rec, "p_signal", None) is None or rec.n_sig == 0 or rec.sig_len == 0:
        raise RecordReadError(Problem(rid, "unreadable", "the record declares no samples or no signals"))
    gains = np.asarray(getattr(rec, "adc_gain", None) or [1.0], dtype=np.float64)
    if not (np.isfinite(gains).all() and (gains > 0).all()) or not (np.isfinite(rec.fs) and rec.fs > 0):
        raise RecordReadError(Problem(rid, "unreadable", f"the header declares gain {gains.tolist()} and fs "
                                      f"{rec.fs}; both must be positive"))
    sig = np.asarray(rec.p_signal, dtype=np.float64).T
    scale = np.array([_UNIT_SCALE.get(str(u).strip().lower(), 1.0) for u in rec.units])[:, None]
    names = [lead_name(n, single_lead_as=single_lead_as if rec.n_sig == 1 else None, aliases=lead_aliases)
             for n in rec.sig_name]
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
