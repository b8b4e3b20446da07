"""The synthetic bank: accepted synthetic ECGs on disk, append-only, memory-mapped, with provenance.

Layout of a bank directory::

    bank.json              fs, leads, n_samples (time samples per ECG: Bank.samples_per_window),
                           class_names, units, label kind (fixed at creation)
    shard-000000.npy       float32 [n, leads, samples] of one append (written to a temp file, renamed)
    shard-000000.json      that append's manifest rows + sha256 of the .npy: the COMMIT POINT
    ...
    plan.json              the generation plan the samples come from (see Bank.claim_plan)
    .lock                  flock'ed by the one process allowed to append

An append writes the .npy first and the .json last, each through temp + fsync + rename, so a
process killed at any instant leaves either a committed shard or an orphan .npy (or temp file)
that the next writer deletes. Every sample has a unique ``key`` (e.g. source id + target + attempt),
so a resumed generation skips the keys already committed: no duplicate, no loss, nothing half
written. Readers open each shard lazily, once per process (so the bank works in DataLoader
workers), and read single samples with positioned reads rather than through a memory map, so a
reader's RAM cost does not grow with the bank's size.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from augframe import atomic
from augframe.errors import BankError, ValidationError
from augframe.jsonable import jsonable
from augframe.signals import ECGBatch, canonical_lead

try:  # POSIX advisory lock; one writer per bank
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

BANK_META = "bank.json"
PLAN_FILE = "plan.json"
FORMAT = "augframe-bank-1"
_SHARD_RE = re.compile(r"^shard-(\d{6})\.(npy|json)$")
VERIFY_MODES = ("none", "lazy", "full")


def _shard_name(index: int, ext: str) -> str:
    return f"shard-{index:06d}.{ext}"


class Bank:
    """A directory of append-only shards of synthetic ECGs plus their manifest rows.

    Open with :meth:`create`, :meth:`open` or :meth:`open_or_create`. ``bank[i]`` returns
    ``(signal [leads, samples] float32, label)`` like a WindowDataset item.
    """

    # set by _load_manifests (and kept current by _add_shard / append)
    _shards: list[dict[str, Any]]
    _key_index: dict[str, int] | None  # key -> position, built on first use by _index
    _next_shard: int

    def __init__(self, path: Path, meta: dict[str, Any], *, writable: bool, verify: str) -> None:
        if verify not in VERIFY_MODES:
            raise ValidationError(f"Bank verify={verify!r}; use one of {VERIFY_MODES}")
        self.path = path
        self.meta = meta
        self.writable = writable
        self.verify_mode = verify
        self._lock_fd: int | None = None
        self._cache: dict[int, np.ndarray] = {}
        self._fds: dict[int, tuple[int, int]] = {}
        self._verified: set[int] = set()
        self._offsets_of_data: dict[int, int] = {}
        self._pid = _PID[0]
        self._row_shape = (len(meta["leads"]), int(meta["n_samples"]))
        self._row_bytes = 4 * self._row_shape[0] * self._row_shape[1]
        if writable:
            self._acquire_lock()
            self._remove_orphans()
        self._load_manifests()
        if verify == "full":
            self.verify()

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], *, fs: float, leads: Sequence[str], samples_per_window: int,
               class_names: Sequence[str], units: str = "mV", multilabel: bool = False) -> Bank:
        """Make a new, empty bank (the directory may exist but must not hold a bank)."""
        p = Path(path)
        if (p / BANK_META).exists():
            raise BankError(f"{str(p)!r} already holds a bank; open it with Bank.open or Bank.open_or_create")
        meta = _make_meta(fs, leads, samples_per_window, class_names, units, multilabel)
        p.mkdir(parents=True, exist_ok=True)
        atomic.write_json(p / BANK_META, meta)
        return cls(p, meta, writable=True, verify="none")

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, writable: bool = False, verify: str = "lazy") -> Bank:
        """Open an existing bank; ``writable`` takes the write lock and clears a killed writer's orphans.

        ``verify``: ``'lazy'`` checks a shard's sha256 the first time this process reads it,
        ``'full'`` checks every shard now, ``'none'`` trusts the files.
        """
        p = Path(path)
        meta_path = p / BANK_META
        if not meta_path.is_file():
            raise BankError(f"{str(p)!r} is not a synthetic bank (no {BANK_META}); create it with Bank.create")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise BankError(f"{meta_path} is corrupt ({exc}); the bank cannot be read") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise BankError(f"{meta_path} has format {got!r}; this augframe reads {FORMAT!r}")
        return cls(p, _checked_meta(meta, meta_path), writable=writable, verify=verify)

    @classmethod
    def open_or_create(cls, path: str | os.PathLike[str], *, fs: float, leads: Sequence[str], samples_per_window: int,
                       class_names: Sequence[str], units: str = "mV", multilabel: bool = False) -> Bank:
        """Open the bank for appending if it exists (its layout must match), else create it."""
        p = Path(path)
        if not (p / BANK_META).exists():
            return cls.create(p, fs=fs, leads=leads, samples_per_window=samples_per_window, class_names=class_names,
                              units=units, multilabel=multilabel)
        bank = cls.open(p, writable=True, verify="none")
        want = _make_meta(fs, leads, samples_per_window, class_names, units, multilabel)
        for key in ("fs", "leads", "n_samples", "class_names", "units", "multilabel"):
            if bank.meta[key] != want[key]:
                bank.close()
                name = "samples_per_window" if key == "n_samples" else key
                raise BankError(
                    f"bank {str(p)!r} holds {name}={bank.meta[key]!r} but this run makes {name}={want[key]!r}; "
                    "use another bank directory or make matching samples"
                )
        return bank

    # ---- facts -------------------------------------------------------------------------------
    @property
    def fs(self) -> float:
        return float(self.meta["fs"])

    @property
    def leads(self) -> tuple[str, ...]:
        return tuple(self.meta["leads"])

    @property
    def samples_per_window(self) -> int:
        """Time samples in each ECG (``bank.json``'s ``n_samples``); ``len(bank)`` counts the ECGs."""
        return int(self.meta["n_samples"])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.meta["class_names"])

    @property
    def units(self) -> str:
        return str(self.meta["units"])

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 class indices, or (N, C) float32 multi-hot for a multilabel bank."""
        return self._labels

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self._keys.tolist())

    @property
    def n_shards(self) -> int:
        return len(self._shards)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __contains__(self, key: object) -> bool:
        return key in self._index()

    def index_of(self, key: str) -> int:
        index = self._index()
        if key not in index:
            raise BankError(f"bank {str(self.path)!r} has no sample with key {key!r}")
        return index[key]

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The given keys that are not yet in the bank (what a resumed run still has to make)."""
        index = self._index()
        return [k for k in keys if k not in index]

    def _index(self) -> dict[str, int]:
        """key -> position, built on first use (readers that only sample never pay for it)."""
        if self._key_index is None:
            self._key_index = {k: i for i, k in enumerate(self._keys.tolist())}
        return self._key_index

    def rows(self, index: Any = None) -> list[dict[str, Any]]:
        """Manifest rows (provenance, filter scores) of all samples or of ``index``, read from the shards.

        Rows are not kept in memory (only keys and labels are), so a bank's RAM cost stays small.
        """
        idx = np.arange(len(self)) if index is None else np.atleast_1d(np.asarray(index, dtype=np.int64))
        shard_of = np.searchsorted(self._offsets, idx, side="right") - 1
        out: list[dict[str, Any]] = [{} for _ in idx]
        for s in np.unique(shard_of):
            rows = self._read_manifest(self.path / self._shards[int(s)]["json"])["rows"]
            for j in np.flatnonzero(shard_of == s):
                out[j] = rows[int(idx[j] - self._offsets[s])]
        return out

    def __repr__(self) -> str:
        return (f"Bank({str(self.path)!r}, n={len(self)}, shards={self.n_shards}, fs={self.fs:g}, "
                f"leads={list(self.leads)}, classes={list(self.class_names)})")

    # ---- reading -----------------------------------------------------------------------------
    def __getitem__(self, i: int) -> tuple[np.ndarray, Any]:
        offsets = self._offsets_list
        n = offsets[-1]
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"bank index {i} out of range for {n} samples")
        i %= n
        s = bisect.bisect_right(offsets, i) - 1
        labels = self._labels
        return self._read_row(s, i - offsets[s]), (labels.item(i) if labels.ndim == 1 else labels[i])

    def _read_row(self, s: int, j: int) -> np.ndarray:
        """One sample read with a positioned read (pread) into a fresh buffer.

        Not through the memory map on purpose: pages a map touches count in the reader's RSS, so a
        DataLoader worker sampling a large bank would grow with the bank; a pread leaves the data
        in the OS page cache only, and costs one system call per item.
        """
        entry = self._fds.get(s) if self._pid == _PID[0] else None
        fd, offset = entry if entry is not None else self._shard_fd(s)
        nbytes = self._row_bytes
        buf = bytearray(nbytes)
        got = _preadv(fd, buf, offset + j * nbytes)
        if got != nbytes:
            raise BankError(f"bank shard {self._shards[s]['npy']} is shorter than its manifest says; verify the bank")
        return np.frombuffer(buf, dtype=np.float32).reshape(self._row_shape)

    def read(self, index: Any, out: np.ndarray | None = None) -> np.ndarray:
        """float32 ``[len(index), leads, samples]``: the given samples, one positioned read each.

        The batched form of ``bank[i][0]`` (what :class:`~augframe.dataset.AugmentedDataset` uses
        per DataLoader batch): one allocation for the whole batch and no per-sample Python call,
        and, like ``bank[i]``, no memory map, so the reader's RSS does not grow with the bank.
        ``out`` (C-contiguous float32 of that shape) is filled instead of a new array.
        """
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            bad = int(idx[(idx < -n) | (idx >= n)][0])
            raise IndexError(f"bank index {bad} out of range for {n} samples")
        idx = idx % n if idx.size and idx.min() < 0 else idx
        shape = (len(idx), *self._row_shape)
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValidationError(f"Bank.read out has {out.dtype}{list(out.shape)}; expected a C-contiguous "
                                  f"float32{list(shape)}")
        if not len(idx):
            return out
        nbytes = self._row_bytes
        shard_of = np.searchsorted(self._offsets, idx, side="right") - 1
        starts = ((idx - self._offsets[shard_of]) * nbytes).tolist()
        shards = shard_of.tolist()
        fds = self._fds if self._pid == _PID[0] else {}
        handles = {s: fds.get(s) or self._shard_fd(s) for s in set(shards)}  # opens (and verifies) on first use
        flat = out.data.cast("B")  # out is C-contiguous (checked above)
        read = os.preadv if _HAVE_PREADV else (lambda fd, bufs, at: _preadv(fd, bufs[0], at))
        end = 0
        for s, start in zip(shards, starts):
            fd, offset = handles[s]
            if read(fd, [flat[end:end + nbytes]], offset + start) != nbytes:
                raise BankError(f"bank shard {self._shards[s]['npy']} is shorter than its manifest says; "
                                "verify the bank")
            end += nbytes
        return out

    def _shard_fd(self, s: int) -> tuple[int, int]:
        """(file handle of this process, byte offset of the data) of shard ``s``, opened on first use."""
        self._check_pid()
        entry = self._fds.get(s)
        if entry is None:
            offset = self._data_offset(s)
            try:
                entry = (os.open(self.path / self._shards[s]["npy"], os.O_RDONLY), offset)
            except OSError as exc:
                raise BankError(f"bank shard {self.path / self._shards[s]['npy']} cannot be opened ({exc}); "
                                "verify the bank") from exc
            self._fds[s] = entry
        return entry

    def _data_offset(self, s: int) -> int:
        """Where shard ``s``'s data starts, from its checked .npy header; parsed once per Bank and kept
        across fork and pickling (committed shards never change)."""
        offset = self._offsets_of_data.get(s)
        if offset is None:
            shard = self._shards[s]
            path = self.path / shard["npy"]
            self._maybe_verify(s)
            try:
                with open(path, "rb") as f:
                    version = np.lib.format.read_magic(f)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, fortran, dtype = read_header(f)
                    offset = f.tell()
            except (OSError, ValueError) as exc:
                raise BankError(f"bank shard {path} cannot be read ({exc}); verify the bank") from exc
            self._check_shape(path, shard, shape, dtype, fortran)
            self._offsets_of_data[s] = offset
        return offset

    def prepare_reads(self) -> None:
        """Check every shard now (its sha256 with ``verify='lazy'``, its header) so that processes
        forked afterwards, e.g. DataLoader workers, inherit that and only open file handles."""
        for s in range(len(self._shards)):
            self._data_offset(s)

    def _check_pid(self) -> None:
        if _PID[0] != self._pid:  # in a forked worker: open this process's own handles
            self._cache, self._fds, self._pid = {}, {}, _PID[0]

    def _maybe_verify(self, s: int) -> None:
        if self.verify_mode == "lazy" and s not in self._verified:
            self._check_hash(self._shards[s])
            self._verified.add(s)

    def _check_shape(self, path: Path, shard: Mapping[str, Any], shape: Any, dtype: Any, fortran: bool) -> None:
        want = (shard["n"], len(self.leads), self.samples_per_window)
        if tuple(shape) != want or np.dtype(dtype) != np.float32 or fortran:
            raise BankError(f"bank shard {path} holds {np.dtype(dtype)}{list(shape)}, expected float32{list(want)}")

    def signals(self, index: Any) -> np.ndarray:
        """float32 ``[len(index), leads, samples]`` for the given global indices (read shard by shard)."""
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"bank indices must lie in 0..{n - 1}")
        out = np.empty((len(idx), len(self.leads), self.samples_per_window), dtype=np.float32)
        shard_of = np.searchsorted(self._offsets, idx, side="right") - 1
        for s in np.unique(shard_of):
            sel = np.flatnonzero(shard_of == s)
            out[sel] = self._shard_array(int(s))[idx[sel] - self._offsets[s]]
        return out

    def batch(self, index: Any = None) -> ECGBatch:
        """Samples (all, or ``index``) as an in-memory ECGBatch with their keys as ids."""
        idx = np.arange(len(self)) if index is None else np.atleast_1d(np.asarray(index, dtype=np.int64))
        return ECGBatch(self.signals(idx), self.fs, self.leads, labels=self._labels[idx],
                        class_names=self.class_names, ids=self._keys[idx].tolist(), units=self.units)

    def _shard_array(self, s: int) -> np.ndarray:
        """The memory map of shard ``s`` (for bulk reads), opened once per process."""
        self._check_pid()
        arr = self._cache.get(s)
        if arr is None:
            shard = self._shards[s]
            path = self.path / shard["npy"]
            self._maybe_verify(s)
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise BankError(f"bank shard {path} cannot be read ({exc}); verify the bank") from exc
            self._check_shape(path, shard, arr.shape, arr.dtype, False)
            self._cache[s] = arr
        return arr

    def verify(self) -> None:
        """Check every shard's sha256 against its manifest; raise BankError naming a bad shard."""
        for s, shard in enumerate(self._shards):
            self._check_hash(shard)
            self._verified.add(s)

    def _check_hash(self, shard: Mapping[str, Any]) -> None:
        path = self.path / shard["npy"]
        if not path.is_file():
            raise BankError(f"bank shard {path} is missing although {shard['json']} commits it")
        if atomic.sha256_file(path) != shard["sha256"]:
            raise BankError(f"bank shard {path} does not match the sha256 in {shard['json']}: it was modified "
                            "or corrupted; delete both files to drop the shard, then resume the run")
        try:
            finite = bool(np.isfinite(np.load(path, mmap_mode="r", allow_pickle=False)).all())
        except (OSError, ValueError, TypeError) as exc:
            raise BankError(f"bank shard {path} cannot be read ({exc}); delete it and {shard['json']}") from exc
        if not finite:
            raise BankError(f"bank shard {path} holds NaN or Inf (Bank.append never writes them): it was "
                            f"replaced by hand; delete it and {shard['json']}, then resume the run")

    def refresh(self) -> None:
        """Re-read the manifests (to see shards another process committed since this one opened)."""
        self._load_manifests()

    # ---- writing -----------------------------------------------------------------------------
    def append(self, batch: ECGBatch, rows: Sequence[Mapping[str, Any]], *, skip_existing: bool = False) -> int:
        """Commit ``batch`` with one manifest row per sample (each with a unique ``key``).

        Returns how many samples were added. Keys already in the bank raise, or are skipped with
        ``skip_existing=True`` (a resumed run re-making work it had already committed).
        """
        if not self.writable:
            raise BankError(f"bank {str(self.path)!r} was opened read-only; open it with writable=True to append")
        batch_labels = self._check_batch(batch, rows)
        keys = [str(r["key"]) for r in rows]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise BankError(f"append has the key {dup!r} more than once; every sample needs a unique key")
        known = self._index()
        keep = [i for i, k in enumerate(keys) if k not in known]
        if len(keep) != len(keys) and not skip_existing:
            dup = next(k for k in keys if k in known)
            raise BankError(f"the bank already holds key {dup!r}; pass skip_existing=True when resuming")
        if not keep:
            return 0
        signals = np.ascontiguousarray(batch.numpy()[keep], dtype=np.float32)
        labels = batch_labels[keep]
        out_rows = []
        for j, i in enumerate(keep):
            row = {k: jsonable(v) for k, v in rows[i].items()}
            row["key"] = keys[i]
            row["label"] = labels[j].tolist()
            out_rows.append(row)
        index = self._next_shard
        npy, js = _shard_name(index, "npy"), _shard_name(index, "json")
        sha = atomic.write_npy(self.path / npy, signals)
        manifest = {"format": FORMAT, "shard": index, "n": len(keep), "npy": npy, "sha256": sha, "rows": out_rows}
        atomic.write_json(self.path / js, manifest, indent=None)  # the commit point
        self._add_shard({**manifest, "json": js})
        self._next_shard = index + 1
        return len(keep)

    def claim_plan(self, plan: Mapping[str, Any]) -> None:
        """Bind this bank to one generation plan (what decides every sample: seed, data, generator...).

        The first writer records ``plan`` in ``plan.json``; a later writer must bring the same plan,
        so a resumed run continues only the work it started and never mixes samples of two plans.
        A different plan raises BankError naming every key that differs.
        """
        if not self.writable:
            raise BankError(f"bank {str(self.path)!r} was opened read-only; open it with writable=True")
        want = json.loads(json.dumps(plan, sort_keys=True, default=str))
        path = self.path / PLAN_FILE
        if not path.exists():
            if len(self):
                raise BankError(f"bank {str(self.path)!r} holds {len(self)} samples but no {PLAN_FILE}: the plan "
                                "they come from is unknown; use a new bank directory (or delete this one)")
            atomic.write_json(path, want)
            return
        self.check_plan(want)

    def check_plan(self, plan: Mapping[str, Any]) -> None:
        """Raise BankError naming the differing keys if ``plan.json`` records another plan than ``plan``
        (read-only: what an evaluation of this bank under a recipe checks first)."""
        path = self.path / PLAN_FILE
        if not path.exists():
            return
        want = json.loads(json.dumps(plan, sort_keys=True, default=str))
        have = self._read_json(path)
        if have != want:
            diffs = plan_differences(have, want)
            raise BankError(f"bank {str(self.path)!r} was made by another plan ({'; '.join(diffs)}); a resume "
                            "continues only the same plan: use a new output directory, or undo the change")

    def _read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BankError(f"{path} is unreadable ({exc}); the bank cannot be trusted") from exc

    def _check_batch(self, batch: ECGBatch, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Raise BankError if ``batch`` and ``rows`` cannot be appended; return the batch's labels."""
        if not isinstance(batch, ECGBatch):
            raise BankError(f"Bank.append takes an ECGBatch, not {type(batch).__name__}")
        if len(rows) != len(batch):
            raise BankError(f"Bank.append got {len(rows)} manifest rows for {len(batch)} ECGs")
        for i, r in enumerate(rows):
            if "key" not in r:
                raise BankError(f"manifest row {i} has no 'key'; give every sample a unique key")
            _check_key(r["key"], f"manifest row {i}")
        checks = (("fs", float(batch.fs), self.fs), ("leads", tuple(batch.leads), self.leads),
                  ("samples_per_window", batch.n_samples, self.samples_per_window), ("units", batch.units, self.units))
        for name, got, want in checks:
            if got != want:
                raise BankError(f"appended batch has {name}={got!r}; bank {str(self.path)!r} holds {name}={want!r}")
        if batch.class_names and tuple(batch.class_names) != self.class_names:
            raise BankError(f"appended batch has class_names={batch.class_names}; the bank holds {self.class_names}")
        if batch.labels is None:
            raise BankError("appended batch has no labels; every synthetic ECG needs its target label")
        multilabel = bool(self.meta["multilabel"])
        if (batch.labels.ndim == 2) != multilabel:
            kind = "multi-hot (N, C)" if multilabel else "class-index (N,)"
            raise BankError(f"appended batch labels have shape {batch.labels.shape}; this bank stores {kind} labels")
        if not multilabel and len(batch) and (batch.labels.min() < 0 or batch.labels.max() >= len(self.class_names)):
            raise BankError(f"appended labels must be class indices in 0..{len(self.class_names) - 1}")
        return batch.labels

    def close(self) -> None:
        """Release the write lock and this process's file handles."""
        self._cache.clear()
        if _PID[0] == self._pid:
            for fd, _ in self._fds.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fds = {}
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
        self.writable = False

    def __enter__(self) -> Bank:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (e.g. into DataLoader workers) as a read-only handle without open files.

        Shards already verified (and headers already parsed) stay so: committed shards never change.
        """
        state = dict(self.__dict__)
        state.update(_cache={}, _fds={}, _verified=set(self._verified), _lock_fd=None, writable=False, _pid=-1)
        return state

    # ---- internals ---------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        if fcntl is None:  # pragma: no cover
            return
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise BankError(f"another process is appending to bank {str(self.path)!r}; "
                            "wait for it or use another bank directory") from exc
        self._lock_fd = fd

    def _remove_orphans(self) -> None:
        """Delete what a killed writer left: temp files and .npy shards without a committed .json."""
        atomic.remove_stale_temps(self.path)
        committed = {m.group(1) for p in self.path.iterdir() if (m := _SHARD_RE.match(p.name)) and m.group(2) == "json"}
        for p in self.path.glob("shard-*.npy"):
            m = _SHARD_RE.match(p.name)
            if m and m.group(1) not in committed:
                p.unlink()

    def _load_manifests(self) -> None:
        """Keys, labels and shard offsets from the committed manifests (rows are not kept)."""
        self._shards = []
        keys: list[str] = []
        labels: list[Any] = []
        offsets = [0]
        files = sorted((int(m.group(1)), p) for p in self.path.glob("shard-*.json") if (m := _SHARD_RE.match(p.name)))
        for _, p in files:
            manifest = self._read_manifest(p)
            rows = manifest.pop("rows")
            keys.extend(r["key"] for r in rows)
            labels.extend(r["label"] for r in rows)
            self._shards.append({**manifest, "json": p.name})
            offsets.append(offsets[-1] + len(rows))
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._offsets_list = offsets
        self._keys = np.asarray(keys, dtype=str) if keys else np.zeros(0, dtype="<U1")
        self._labels = self._label_array(labels)
        self._key_index = None
        if len(np.unique(self._keys)) != len(self._keys):
            uniq, counts = np.unique(self._keys, return_counts=True)
            raise BankError(f"bank {str(self.path)!r} holds key {str(uniq[counts > 1][0])!r} more than once; "
                            "the bank was edited by hand")
        self._next_shard = files[-1][0] + 1 if files else 0

    def _read_manifest(self, path: Path) -> dict[str, Any]:
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            # append writes atomically; only hand edits get here
            raise BankError(f"bank manifest {path} is unreadable ({exc}); delete it and its .npy, then resume") from exc
        problem = _manifest_problem(manifest, path.name)
        if problem:
            raise BankError(f"bank manifest {path} {problem}; it was not written by Bank.append: delete it and "
                            "its .npy, then resume")
        return manifest

    def _add_shard(self, manifest: dict[str, Any]) -> None:
        rows = manifest.pop("rows")
        base = int(self._offsets[-1])
        new_keys = [r["key"] for r in rows]
        self._keys = np.concatenate([self._keys, np.asarray(new_keys, dtype=str)])
        self._labels = np.concatenate([self._labels, self._label_array([r["label"] for r in rows])])
        if self._key_index is not None:
            self._key_index.update({k: base + j for j, k in enumerate(new_keys)})
        self._shards.append(manifest)
        self._offsets = np.append(self._offsets, base + len(rows))
        self._offsets_list = self._offsets.tolist()

    def _label_array(self, labels: list[Any]) -> np.ndarray:
        """Labels from manifest rows, checked in one vectorised pass (banks can hold millions)."""
        n_classes = len(self.class_names)
        multilabel = bool(self.meta["multilabel"])
        try:
            arr = np.asarray(labels) if labels else np.zeros((0, n_classes) if multilabel else 0, dtype=np.int64)
        except ValueError:  # ragged lists
            arr = np.asarray([], dtype=object)
        if multilabel:
            ok = arr.dtype.kind in "iuf" and arr.ndim == 2 and arr.shape[1] == n_classes and bool(np.isfinite(arr).all())
            if not ok:
                raise BankError(f"bank {str(self.path)!r}: a manifest label is not a multi-hot list of {n_classes} "
                                "numbers; the bank was edited by hand")
            return arr.astype(np.float32).reshape(-1, n_classes)
        ok = arr.dtype.kind in "iu" and arr.ndim == 1 and (not len(arr) or (arr.min() >= 0 and arr.max() < n_classes))
        if not ok:
            raise BankError(f"bank {str(self.path)!r}: manifest labels must be class indices in 0..{n_classes - 1} "
                            f"(found {arr.dtype} values); the bank was edited by hand")
        return arr.astype(np.int64).reshape(-1)


def plan_differences(old: Any, new: Any, path: str = "") -> list[str]:
    """'key: old -> new' for every leaf where two JSON-shaped plans differ (dotted key paths)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            sub = f"{path}.{k}" if path else str(k)
            if k not in old or k not in new:
                out.append(f"{sub}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}")
            else:
                out += plan_differences(old[k], new[k], sub)
        return out
    return [] if old == new else [f"{path or '(plan)'}: {old!r} -> {new!r}"]


def _preadv(fd: int, buf: Any, offset: int) -> int:
    """Read into ``buf`` at ``offset`` without moving the file position; returns the bytes read."""
    if _HAVE_PREADV:
        return os.preadv(fd, [buf], offset)
    data = os.pread(fd, len(buf), offset)  # pragma: no cover - platforms without preadv
    buf[: len(data)] = data
    return len(data)


_HAVE_PREADV = hasattr(os, "preadv")

# This process's id, kept current across fork by a hook instead of asking the kernel on every read
# (os.getpid() is a system call: ~0.3 us, a visible share of a ~4 us single-sample read). A bank
# compares it with the id it opened its files in, and reopens them in a forked DataLoader worker.
_PID = [os.getpid()]


def _after_fork_in_child() -> None:
    _PID[0] = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _check_key(key: Any, where: str) -> None:
    """Keys are non-empty strings without NUL (numpy's string arrays drop trailing NULs)."""
    if not isinstance(key, str) or not key or "\0" in key:
        raise BankError(f"{where} has key {key!r}; a bank key is a non-empty string without NUL characters")


def _manifest_problem(m: Any, name: str) -> str | None:
    """What is wrong with a shard manifest's structure, or None."""
    if not isinstance(m, dict):
        return f"is a JSON {type(m).__name__}, not an object"
    match = _SHARD_RE.match(name)
    want_npy = _shard_name(int(match.group(1)), "npy") if match else None
    if m.get("npy") != want_npy:  # never a path of the manifest's choosing (e.g. ../outside.npy)
        return f"names the data file {m.get('npy')!r}; expected {want_npy!r}"
    if not isinstance(m.get("sha256"), str):
        return "has no sha256"
    rows = m.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return "has no list of rows"
    if m.get("n") != len(rows) or isinstance(m.get("n"), bool):
        return f"says n={m.get('n')!r} but holds {len(rows)} rows"
    for i, r in enumerate(rows):
        if "label" not in r:
            return f"row {i} has no label"
        try:
            _check_key(r.get("key"), f"row {i}")
        except BankError as exc:
            return str(exc)
    return None


def _checked_meta(meta: dict[str, Any], path: Path) -> dict[str, Any]:
    """bank.json's facts with their types checked (a hand-edited file gives BankError, not a crash)."""
    try:
        fs, leads, n, names = meta["fs"], meta["leads"], meta["n_samples"], meta["class_names"]
        units, multilabel = meta["units"], meta["multilabel"]
    except KeyError as exc:
        raise BankError(f"{path} has no {exc.args[0]!r}; the bank cannot be read") from exc
    ok = (_is_number(fs) and isinstance(n, int) and not isinstance(n, bool) and isinstance(units, str)
          and isinstance(multilabel, bool) and isinstance(leads, list) and isinstance(names, list)
          and all(isinstance(x, str) for x in leads + names) and leads and len(set(names)) == len(names))
    if not ok:
        raise BankError(f"{path} holds fs={fs!r}, leads={leads!r}, n_samples={n!r}, class_names={names!r}, "
                        f"units={units!r}, multilabel={multilabel!r}: a value has the wrong type")
    try:
        return _make_meta(fs, leads, n, names, units, multilabel)
    except ValidationError as exc:
        raise BankError(f"{path}: {exc}") from exc


def _make_meta(fs: float, leads: Sequence[str], samples_per_window: int, class_names: Sequence[str], units: str,
               multilabel: bool) -> dict[str, Any]:
    if not fs > 0:
        raise BankError(f"bank fs={fs} must be a positive sampling rate")
    if int(samples_per_window) < 1:
        raise BankError(f"bank samples_per_window={samples_per_window} must be positive")
    if not class_names:
        raise BankError("a bank needs class_names (the names its labels index)")
    return {
        "format": FORMAT, "fs": float(fs), "leads": [canonical_lead(x) for x in leads],
        "n_samples": int(samples_per_window),
        "class_names": [str(c) for c in class_names], "units": str(units), "multilabel": bool(multilabel),
    }
