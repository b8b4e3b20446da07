"""In-memory windows: a source through the preprocessing into one :class:`ECGBatch`.

For tests, demos and small subsets. Large builds go through :mod:`augframe.data.cache`, which
streams the same steps into a memory-mapped file instead of a list in RAM.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from augframe.data.cinc2017 import CinC2017Source
from augframe.data.normalise import Normaliser
from augframe.data.preprocess import PreprocessConfig, RecordWindows, preprocess_record
from augframe.data.problems import BuildReport, Problem
from augframe.errors import DataError
from augframe.protocols import Source
from augframe.signals import ECGBatch

log = logging.getLogger("augframe.data")


def windows_from_source(source: Source, config: PreprocessConfig, classes: Sequence[str] | None, *,
                        strict: bool = False, carry: Sequence[str] = ()) -> tuple[ECGBatch, BuildReport]:
    """All kept windows of ``source`` as an ECGBatch in mV, and the build report.

    Labels index ``classes`` (records of other labels are reported as ``excluded-class``); with
    ``classes=None`` the batch is unlabelled. Meta columns: ``record``, ``patient``, ``start_s``,
    ``quality``, plus one per ``carry`` key: that entry of each window's ``Record.meta`` (None
    where a record lacks it), e.g. where a rhythm episode lies in its recording.
    """
    report = BuildReport()
    parts: list[RecordWindows] = []
    for record in source.records():
        report.records_seen += 1
        if classes is not None and record.label not in classes:
            report.add(Problem(record.id, "excluded-class", f"label {record.label!r}"))
            continue
        out = preprocess_record(record, config)
        if isinstance(out, Problem):
            report.add(out)
            continue
        report.windows_rejected += out.rejected
        if out.rejected:
            report.add(Problem(record.id, "low-quality", f"{out.rejected} window(s) below the quality threshold"))
        if len(out.windows):
            report.records_used += 1
            report.windows_kept += len(out.windows)
            parts.append(out)
    report.extend(getattr(source, "problems", ()))
    report.check(strict=strict, what=f"{source.name} windows")
    if report.faults:
        log.warning("%s: some input was skipped\n%s", source.name, report.summary())
    leads = parts[0].leads
    for p in parts:
        if p.leads != leads:
            raise DataError(f"record {p.record.id} gives leads {p.leads}, others give {leads}; "
                            "name the leads explicitly in preprocess.leads")
    signals = np.concatenate([p.windows for p in parts])
    labels = None
    if classes is not None:
        labels = np.concatenate([np.full(len(p.windows), list(classes).index(str(p.record.label))) for p in parts])
    ids = [i for p in parts for i in p.ids]
    meta = {
        "record": np.concatenate([np.full(len(p.windows), p.record.id, dtype=object) for p in parts]).astype(str),
        "patient": np.concatenate([np.full(len(p.windows), p.record.patient_id or p.record.id, dtype=object)
                                   for p in parts]).astype(str),
        "start_s": np.concatenate([p.start_s for p in parts]),
        "quality": np.concatenate([p.quality for p in parts]),
    }
    for key in carry:
        if key in meta:
            raise DataError(f"carry key {key!r} would overwrite the meta column of that name; carry another key")
        meta[key] = np.array([p.record.meta.get(key) for p in parts for _ in range(len(p.windows))], dtype=object)
    batch = ECGBatch(signals, config.fs, leads, labels=labels, class_names=tuple(classes or ()), ids=ids, meta=meta)
    return batch, report


def normalise_batch(batch: ECGBatch, normalise: str | None, *, seed: int = 0) -> tuple[ECGBatch, Normaliser]:
    """Fit ``normalise`` on ``batch`` itself and apply it (use the cache + splits to fit on train only)."""
    norm = Normaliser.fit(normalise, [batch.numpy()], seed=seed)
    if norm.kind == "none":
        return batch, norm
    return batch.with_signals(norm.apply(batch.numpy()).astype(np.float32), units=norm.units), norm


def cinc2017_windows(
    root: str | os.PathLike[str], *, classes: Sequence[str] = ("N", "A"), limit_per_class: int | None = None,
    fs: float = 250.0, window_s: float = 10.0, stride_s: float | None = None, normalise: str | None = "zscore",
    seed: int = 0, lead: str = "I", cleaning: str = "reference", strict: bool = False,
) -> ECGBatch:
    """Preprocessed 10 s windows of the CinC 2017 records at ``root``, as float32 [N, 1, samples].

    Records of ``classes`` (labels index them: 0=N, 1=A by default), at most ``limit_per_class``
    records per class (drawn with ``seed``), resampled to ``fs``, cleaned the reference way,
    cut into ``window_s`` windows every ``stride_s`` (default: no overlap), quality-gated, then
    normalised (``"zscore"`` per window, ``"minmax"`` global to [-1.5, 1.5] fitted on these
    windows, ``"robust"``, or None for mV). ids are ``"A00001:w0"``; meta has ``record``,
    ``patient`` (= record), ``start_s`` and ``quality``. The CinC lead is reported as lead I.
    """
    source = CinC2017Source(Path(root), classes=tuple(classes), limit_per_class=limit_per_class, seed=seed)
    config = PreprocessConfig(leads=(lead,) if lead != "first" else "first", fs=fs, window_s=window_s,
                              stride_s=stride_s, cleaning=cleaning)
    batch, _ = windows_from_source(source, config, tuple(classes), strict=strict)
    batch, _ = normalise_batch(batch, normalise, seed=seed)
    return batch
