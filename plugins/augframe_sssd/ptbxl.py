"""PTB-XL records -> the labelled 12-lead batch SSSD-ECG trains on.

Records come from the data layer's PTB-XL source (each :class:`~augframe.protocols.Record` carries
its ``scp_codes`` as ``statements``). Two label modes:

* ``statements``: every SCP statement present (any likelihood, as SSSD-ECG does) as a multi-hot
  column; the vocabulary is given or taken from the records, sorted;
* ``af-sr``: the rhythm pair of the MIMIC-IV AF adaptation, class 0 ``SR`` and class 1 ``AFIB``;
  records with both or neither are left out (their ids are returned).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from augframe.errors import DataError, require_choice
from augframe.protocols import Record
from augframe.signals import STANDARD_LEADS, ECGBatch

LABEL_MODES = ("statements", "af-sr")
AF_SR_CLASSES = ("SR", "AFIB")


def statement_vocabulary(statements: Iterable[Mapping[str, float]]) -> tuple[str, ...]:
    """Sorted set of the statement codes that occur."""
    return tuple(sorted({code for s in statements for code in s}))


def multi_hot(statements: Sequence[Mapping[str, float]], vocabulary: Sequence[str]) -> np.ndarray:
    """``(N, C)`` float32: 1 where the record carries the statement; unknown codes are ignored."""
    col = {code: j for j, code in enumerate(vocabulary)}
    out = np.zeros((len(statements), len(vocabulary)), np.float32)
    for i, s in enumerate(statements):
        for code in s:
            if code in col:
                out[i, col[code]] = 1.0
    return out


def af_sr_label(statements: Mapping[str, float]) -> int:
    """0 = sinus rhythm, 1 = atrial fibrillation, -1 = both or neither."""
    sr, af = "SR" in statements, "AFIB" in statements
    return 1 if af and not sr else 0 if sr and not af else -1


def records_to_batch(records: Iterable[Record], labels: str = "statements",
                     vocabulary: Sequence[str] | None = None, fs: float = 100.0,
                     samples: int = 1000) -> tuple[ECGBatch, list[str]]:
    """A 12-lead batch in standard lead order with labels (and ``meta['patient_id']`` for grouped
    splits); also the ids left out (af-sr mode).

    Every record must be 12-lead at ``fs`` Hz with at least ``samples`` samples (the first
    ``samples`` are kept); anything else raises a DataError naming the record.
    """
    require_choice("labels", labels, LABEL_MODES)
    sigs, ids, statements, patients, dropped = [], [], [], [], []
    for rec in records:
        if float(rec.fs) != float(fs):
            raise DataError(f"PTB-XL record {rec.id} is sampled at {rec.fs:g} Hz; expected {fs:g} Hz "
                            "(use the records100 files or resample first)")
        if rec.signal.shape[-1] < samples:
            raise DataError(f"PTB-XL record {rec.id} has {rec.signal.shape[-1]} samples; expected >= {samples}")
        missing = [name for name in STANDARD_LEADS if name not in rec.leads]
        if missing:
            raise DataError(f"PTB-XL record {rec.id} lacks leads {missing}; expected all of {list(STANDARD_LEADS)}")
        if labels == "af-sr" and af_sr_label(rec.statements) < 0:
            dropped.append(rec.id)
            continue
        order = [list(rec.leads).index(name) for name in STANDARD_LEADS]
        sigs.append(np.asarray(rec.signal, np.float32)[order, :samples])
        ids.append(rec.id)
        statements.append(dict(rec.statements))
        patients.append(rec.patient_id)
    if not sigs:
        raise DataError(f"no PTB-XL records left for labels={labels!r}")
    if labels == "statements":
        vocab = tuple(vocabulary) if vocabulary is not None else statement_vocabulary(statements)
        y, names = multi_hot(statements, vocab), vocab
    else:
        y, names = np.array([af_sr_label(s) for s in statements], np.int64), AF_SR_CLASSES
    meta = {"patient_id": np.array(patients, dtype=object)} if None not in patients else {}
    batch = ECGBatch(np.stack(sigs), fs, STANDARD_LEADS, labels=y, class_names=names, ids=ids, meta=meta)
    return batch, dropped


def load_ptbxl(root: str | Path, labels: str = "statements", *, folds: Sequence[int] | None = None,
               limit: int | None = None, vocabulary: Sequence[str] | None = None) -> tuple[ECGBatch, list[str]]:
    """PTB-XL records100 (100 Hz, 10 s) through the data layer's PTB-XL source, labelled for SSSD-ECG.

    ``folds`` keeps those ``strat_fold`` values (PTB-XL's recommended split: 1-8 train, 9 validation,
    10 test); ``limit`` reads only the first records. Returns the batch and the ids left out.
    """
    from augframe.data import PTBXLSource

    source = PTBXLSource(root, resolution=100, folds=folds)
    records = itertools.islice(source.records(), limit)
    batch, dropped = records_to_batch(records, labels=labels, vocabulary=vocabulary)
    if source.problems:
        dropped += [p.record for p in source.problems]
    return batch, dropped
