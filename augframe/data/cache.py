"""A memory-mapped cache of preprocessed windows, built once per (source files, preprocessing) pair.

Layout of one cache folder (named by its key)::

    signals.f32    float32 [N, leads, samples], C order, read through np.memmap
    index.npz      per-window labels, record ids, patient ids, window starts, quality, window number
    meta.json      key, content identity, fs, leads, class names, preprocessing config, source name
                   and fingerprint, per-record metadata, and the build report

The key is the sha256 of (cache format, source name, ``source.fingerprint()``, preprocessing
config, classes): change any file or setting and a new cache is built; the same inputs reuse
the old one. ``content`` is the windows' identity (:func:`~augframe.data.fingerprint.windows_identity`),
hashed while they are written: what a run's bank is bound to. A build streams records: windows go
straight to ``signals.f32`` on disk, so 150,000 windows never sit in RAM (only their small index does). It writes into a temporary folder beside
the target and renames it into place at the end, so a crash leaves no partial cache under the key.

Windows are stored in mV; normalisation is applied when reading through a :class:`CacheView`,
because it must be fitted on a training split chosen after the build.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from augframe.data.fingerprint import digest, windows_identity
from augframe.data.normalise import Normaliser
from augframe.data.planned import is_planned
from augframe.data.preprocess import PreprocessConfig, RecordWindows, preprocess_record
from augframe.data.problems import BuildReport, Problem
from augframe.data.wfdb_io import RecordReadError
from augframe.atomic import write_json
from augframe.errors import DataError, ValidationError
from augframe.progress import progress as progress_bar
from augframe.jsonable import jsonable
from augframe.protocols import Record, Source
from augframe.signals import ECGBatch

log = logging.getLogger("augframe.data")

FORMAT_VERSION = 2  # 2: meta.json records the windows' content identity
SIGNALS = "signals.f32"
INDEX = "index.npz"
META = "meta.json"


def default_cache_root() -> Path:
    """``$AUGFRAME_CACHE`` or ``~/.cache/augframe/windows``."""
    env = os.environ.get("AUGFRAME_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "augframe" / "windows"


def cache_key(source: Source, config: PreprocessConfig, classes: Sequence[str] | None) -> str:
    return digest({
        "format": FORMAT_VERSION,
        "source": source.name,
        "fingerprint": source.fingerprint(),
        "preprocess": config.to_dict(),
        "classes": None if classes is None else list(classes),
    })


# --------------------------------------------------------------------------------------------
# Reading and preprocessing records, in this process or in workers
# --------------------------------------------------------------------------------------------
def _preprocess_one(args: tuple[Record, PreprocessConfig]) -> RecordWindows | Problem:
    return preprocess_record(*args)


def _read_and_preprocess(args: tuple[Any, list[dict[str, Any]], PreprocessConfig]) -> list[RecordWindows | Problem]:
    source, rows, config = args
    out: list[RecordWindows | Problem] = []
    for row in rows:
        try:
            record = source.read(row)
        except RecordReadError as err:
            out.append(err.problem)
            continue
        out.append(preprocess_record(record, config))
    return out


def _outcomes(source: Source, config: PreprocessConfig, workers: int, report: BuildReport,
              chunk: int = 16) -> Iterator[RecordWindows | Problem]:
    """Per-record outcomes in source order; with workers > 1 records are read and processed in a pool."""
    if workers <= 1:
        for record in source.records():
            yield preprocess_record(record, config)
        report.extend(getattr(source, "problems", ()))
        return
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    if is_planned(source):
        rows, problems = source.plan()
        report.extend(problems)
        tasks = [(source, rows[i:i + chunk], config) for i in range(0, len(rows), chunk)]
        with ctx.Pool(workers) as pool:
            for outs in pool.imap(_read_and_preprocess, tasks):
                yield from outs
        return
    # a source without plan/read is read here and preprocessed in the pool, a bounded batch at a time
    # (Pool.imap would read the whole source ahead into memory)
    batch: list[tuple[Record, PreprocessConfig]] = []
    with ctx.Pool(workers) as pool:
        for record in source.records():
            batch.append((record, config))
            if len(batch) >= workers * chunk * 2:
                yield from pool.map(_preprocess_one, batch, chunksize=chunk)
                batch = []
        if batch:
            yield from pool.map(_preprocess_one, batch, chunksize=chunk)
    report.extend(getattr(source, "problems", ()))


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------
class WindowCache:
    """An opened cache folder; a :class:`~augframe.windows.WindowDataset` over all its windows.

    ``cache[i]`` -> (float32 [leads, samples] in mV, class index). Signals are read lazily through
    a memmap opened on first access in each process (DataLoader workers included).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._meta = json.loads((self.path / META).read_text())
            with np.load(self.path / INDEX, allow_pickle=False) as z:
                self._index = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{self.path} is not a readable window cache ({exc}); delete it and rebuild") from exc
        if self._meta.get("format") != FORMAT_VERSION:
            raise DataError(f"{self.path} has cache format {self._meta.get('format')}, this augframe reads "
                            f"{FORMAT_VERSION}; delete it and rebuild")
        self.fs = float(self._meta["fs"])
        self.leads = tuple(self._meta["leads"])
        self.class_names = tuple(self._meta["class_names"])
        self.n_samples = int(self._meta["n_samples"])
        self._n = int(self._meta["n_windows"])
        expected = self._n * len(self.leads) * self.n_samples * 4
        size = (self.path / SIGNALS).stat().st_size if (self.path / SIGNALS).exists() else -1
        if size != expected:
            raise DataError(f"{self.path / SIGNALS} has {size} bytes, expected {expected}; "
                            "delete the cache and rebuild")
        self._mm: np.memmap | None = None

    # --- WindowDataset -------------------------------------------------------------------------
    @property
    def signals(self) -> np.ndarray:
        """The memory-mapped [N, leads, samples] array (read-only)."""
        if self._mm is None:
            if self._n == 0:
                return np.zeros((0, len(self.leads), self.n_samples), np.float32)
            self._mm = np.memmap(self.path / SIGNALS, dtype=np.float32, mode="r",
                                 shape=(self._n, len(self.leads), self.n_samples))
        return self._mm

    @property
    def labels(self) -> np.ndarray:
        return self._index["labels"]

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return np.array(self.signals[i]), int(self.labels[i])

    def __getitems__(self, indices: Sequence[int] | np.ndarray) -> list[tuple[np.ndarray, int]]:
        """Many windows in one sorted memmap read (torch's DataLoader uses this for whole batches)."""
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        x = np.empty((len(idx), len(self.leads), self.n_samples), np.float32)
        x[order] = self.signals[idx[order]]
        labels = self.labels[idx]
        return [(x[k], int(labels[k])) for k in range(len(idx))]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_mm"] = None  # each process maps the file itself
        return state

    # --- facts -----------------------------------------------------------------------------
    @property
    def key(self) -> str:
        return self._meta["key"]

    @property
    def content(self) -> str:
        """The windows' content identity (same windows, labels and records -> same value)."""
        return self._meta["content"]

    @cached_property
    def ids(self) -> tuple[str, ...]:
        """``"<record>:w<k>"`` per window (computed once)."""
        return tuple(f"{r}:w{int(w)}" for r, w in zip(self._index["record"], self._index["window"]))

    @property
    def units(self) -> str:
        return "mV"

    @property
    def record_ids(self) -> np.ndarray:
        return self._index["record"]

    @property
    def patient_ids(self) -> np.ndarray:
        return self._index["patient"]

    @property
    def meta(self) -> dict[str, np.ndarray]:
        """Per-window columns: record, patient, start_s, quality, window."""
        return {k: self._index[k] for k in ("record", "patient", "start_s", "quality", "window")}

    @property
    def record_meta(self) -> dict[str, dict[str, Any]]:
        return self._meta["record_meta"]

    @property
    def config(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self._meta["preprocess"])

    @property
    def report(self) -> BuildReport:
        return BuildReport.from_dict(self._meta["report"])

    @property
    def source_name(self) -> str:
        return self._meta["source"]

    def batch(self, index: Any = None, normaliser: Normaliser | None = None) -> ECGBatch:
        """Windows at ``index`` (all when None) as an in-memory ECGBatch (for small selections)."""
        idx = np.arange(self._n) if index is None else np.asarray(index, dtype=np.int64).reshape(-1)
        x = np.asarray(self.signals[np.sort(idx)] if len(idx) else self.signals[:0])
        order = np.argsort(np.argsort(idx))
        x = x[order]
        units = "mV"
        if normaliser is not None and normaliser.kind != "none":
            x, units = normaliser.apply(x).astype(np.float32), normaliser.units
        ids = self.ids
        return ECGBatch(x, self.fs, self.leads, labels=self.labels[idx], class_names=self.class_names,
                        ids=[ids[i] for i in idx], meta={k: v[idx] for k, v in self.meta.items()}, units=units)

    def chunks(self, index: Any = None, size: int = 512) -> Iterator[np.ndarray]:
        """Windows at ``index`` in chunks of ``size`` (sorted reads; for fitting normalisers)."""
        idx = np.arange(self._n) if index is None else np.sort(np.asarray(index, dtype=np.int64))
        for s in range(0, len(idx), size):
            yield np.asarray(self.signals[idx[s:s + size]])

    def view(self, index: Any = None, normaliser: Normaliser | None = None) -> CacheView:
        return CacheView(self, np.arange(self._n) if index is None else index, normaliser)

    def __repr__(self) -> str:
        return (f"WindowCache({self._n} windows, leads={list(self.leads)}, fs={self.fs:g}, "
                f"classes={list(self.class_names)}, key={self.key[:12]})")


class CacheView:
    """A WindowDataset over some windows of a cache (a split), optionally normalised on read."""

    def __init__(self, cache: WindowCache, index: Any, normaliser: Normaliser | None = None) -> None:
        self.cache = cache
        self.index = np.asarray(index, dtype=np.int64).reshape(-1)
        if len(self.index) and (self.index.min() < 0 or self.index.max() >= len(cache)):
            raise ValidationError(f"CacheView index outside 0..{len(cache) - 1}")
        self.normaliser = normaliser
        self.fs, self.leads, self.class_names = cache.fs, cache.leads, cache.class_names

    @property
    def labels(self) -> np.ndarray:
        return self.cache.labels[self.index]

    @cached_property
    def ids(self) -> tuple[str, ...]:
        ids = self.cache.ids
        return tuple(ids[i] for i in self.index)

    @property
    def units(self) -> str:
        return "mV" if self.normaliser is None else self.normaliser.units

    @property
    def patient_ids(self) -> np.ndarray:
        return self.cache.patient_ids[self.index]

    @property
    def record_ids(self) -> np.ndarray:
        return self.cache.record_ids[self.index]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        x, y = self.cache[int(self.index[i])]
        if self.normaliser is not None:
            x = self.normaliser.apply(x).astype(np.float32)
        return x, y

    def __getitems__(self, indices: Sequence[int] | np.ndarray) -> list[tuple[np.ndarray, int]]:
        items = self.cache.__getitems__(self.index[np.asarray(indices, dtype=np.int64)])
        if self.normaliser is None or self.normaliser.kind == "none":
            return items
        x = self.normaliser.apply(np.stack([it[0] for it in items])).astype(np.float32)
        return [(x[k], items[k][1]) for k in range(len(items))]

    def batch(self, index: Any = None) -> ECGBatch:
        sub = self.index if index is None else self.index[np.asarray(index)]
        return self.cache.batch(sub, self.normaliser)


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------
def build_cache(source: Source, config: PreprocessConfig, *, classes: Sequence[str] | None = None,
                root: str | os.PathLike[str] | None = None, strict: bool = False, workers: int = 1,
                rebuild: bool = False, progress: bool = False) -> WindowCache:
    """Build (or reuse) the cache of ``source`` under ``config``; returns it opened.

    ``classes`` names the label of each class index (records of other labels are skipped and
    counted); None keeps every record, unlabelled (-1). ``workers`` > 1 reads and preprocesses
    records in a process pool. Bad records are collected into the report
    (``cache.report.summary()``); the build fails only when ``strict`` or when no window is left,
    and then leaves nothing behind.
    """
    classes = None if classes is None else tuple(classes)
    root = Path(root) if root is not None else default_cache_root()
    key = cache_key(source, config, classes)
    final = root / key[:24]
    if final.exists() and not rebuild:
        try:
            cache = WindowCache(final)
            if cache.key == key:
                return cache
        except DataError as exc:
            log.warning("rebuilding unreadable cache %s: %s", final, exc)
    root.mkdir(parents=True, exist_ok=True)
    remove_dead_partials(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:24]}.", suffix=".partial", dir=root))
    owner = _claim(tmp)
    try:
        report = _write(source, config, classes, tmp, key, strict, workers, progress)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a finished cache is readable like any folder
        (tmp / _OWNER).unlink()
        if final.exists():
            shutil.rmtree(final)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same cache first
            if not (final / META).exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(owner)
    if report.faults:
        log.warning("window cache %s built with skipped input\n%s", final.name, report.summary())
    return WindowCache(final)


_OWNER = ".building"
#: A .partial folder without an owner file is left alone this long (its builder may be starting).
_UNCLAIMED_GRACE_S = 600.0


def _claim(folder: Path) -> int:
    """Hold an exclusive lock on ``folder/.building`` while this process builds into it."""
    import fcntl

    fd = os.open(folder / _OWNER, os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def remove_dead_partials(root: Path) -> list[Path]:
    """Delete the ``.partial`` folders of builds whose process died (SIGKILL, power cut); returns them.

    A live builder holds the lock on its folder's owner file, so only abandoned folders go.
    """
    import fcntl
    import time

    removed = []
    for folder in Path(root).glob(".*.partial"):
        try:
            fd = os.open(folder / _OWNER, os.O_RDWR)
        except FileNotFoundError:
            if time.time() - folder.stat().st_mtime < _UNCLAIMED_GRACE_S:
                continue
            fd = None
        except OSError:
            continue
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live build
        finally:
            if fd is not None:
                os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _write(source: Source, config: PreprocessConfig, classes: tuple[str, ...] | None, folder: Path, key: str,
           strict: bool, workers: int, progress: bool) -> BuildReport:
    report = BuildReport()
    labels: list[int] = []
    records: list[str] = []
    patients: list[str] = []
    starts: list[np.ndarray] = []
    quality: list[np.ndarray] = []
    window_no: list[np.ndarray] = []
    record_meta: dict[str, dict[str, Any]] = {}
    leads: tuple[str, ...] | None = None
    bar = progress_bar(desc=f"caching {source.name}", unit="rec", enabled=progress)
    signals_hash = hashlib.sha256()
    with open(folder / SIGNALS, "wb") as fh:
        for out in _outcomes(source, config, workers, report):
            report.records_seen += 1
            bar.update(1)
            if isinstance(out, Problem):
                report.add(out)
                continue
            rec = out.record
            if classes is not None and rec.label not in classes:
                report.add(Problem(rec.id, "excluded-class", f"label {rec.label!r}"))
                continue
            if out.rejected:
                report.windows_rejected += out.rejected
                report.add(Problem(rec.id, "low-quality", f"{out.rejected} window(s) below the quality threshold"))
            n = len(out.windows)
            if n == 0:
                continue
            if leads is None:
                leads = out.leads
            elif out.leads != leads:
                report.add(Problem(rec.id, "missing-lead",
                                   f"gives leads {list(out.leads)}, the cache has {list(leads)}"))
                continue
            block = np.ascontiguousarray(out.windows, dtype=np.float32).tobytes()
            fh.write(block)
            signals_hash.update(block)
            label = -1 if classes is None else classes.index(rec.label)
            labels.extend([label] * n)
            records.extend([rec.id] * n)
            patients.extend([rec.patient_id or rec.id] * n)
            starts.append(out.start_s)
            quality.append(out.quality)
            window_no.append(out.index)
            record_meta[rec.id] = jsonable(dict(rec.meta), fallback=str)
            report.records_used += 1
            report.windows_kept += n
    bar.close()
    report.check(strict=strict, what=f"window cache of {source.name}")
    np.savez(folder / INDEX,
             labels=np.asarray(labels, dtype=np.int64),
             record=np.asarray(records, dtype=str),
             patient=np.asarray(patients, dtype=str),
             start_s=np.concatenate(starts).astype(np.float32),
             quality=np.concatenate(quality).astype(np.float32),
             window=np.concatenate(window_no).astype(np.int32))
    write_json(folder / META, {
        "format": FORMAT_VERSION, "key": key, "source": source.name, "fingerprint": source.fingerprint(),
        "content": windows_identity(signals_hash.hexdigest(), labels if classes is not None else None, records,
                                    patients, config.fs, leads or ()),
        "fs": config.fs, "leads": list(leads or ()), "class_names": list(classes or ()),
        "n_windows": report.windows_kept, "n_samples": config.window_samples,
        "preprocess": config.to_dict(), "record_meta": record_meta, "report": report.to_dict(),
    }, sort_keys=True)
    return report


def fit_normaliser(cache: WindowCache, train_index: Iterable[int] | np.ndarray, kind: str | None, *,
                   seed: int = 0, target: tuple[float, float] = (-1.5, 1.5)) -> Normaliser:
    """Fit ``kind`` on the training windows only, streaming them from the memmap."""
    return Normaliser.fit(kind, cache.chunks(np.asarray(list(train_index) if not isinstance(train_index, np.ndarray)
                                                         else train_index)), seed=seed, target=target)
