"""Atomic file writes: write a temp file beside the target, fsync it, rename it over the target.

A reader (or a run resumed after a crash) sees either the old file or the complete new one, never
a half-written one. The rename is atomic because the temp file lives in the same directory (same
filesystem); the directory is fsynced afterwards so the rename itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from augframe.jsonable import jsonable

TMP_SUFFIX = ".tmp"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Files get the permissions an ordinary ``open(path, "w")`` would give (mkstemp alone gives 0600).
DEFAULT_MODE = 0o666 & ~_current_umask()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory entry (the record of a rename) to disk; a no-op where unsupported."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", *, perms: int | None = None) -> Iterator[IO[Any]]:
    """Open a temp file for writing; on clean exit it is fsynced and renamed onto ``path``.

    On an exception the temp file is removed and ``path`` is left as it was. ``perms`` are the
    final file permissions (default: what ``open`` would give under the current umask).
    """
    if "w" not in mode:
        raise ValueError(f"atomic_open writes only; got mode {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    try:
        with contextlib.suppress(OSError):  # e.g. filesystems without POSIX permissions
            os.fchmod(fd, DEFAULT_MODE if perms is None else perms)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Atomically replace ``path`` with ``text``."""
    write_bytes(path, text.encode(encoding))


def write_json(path: str | os.PathLike[str], obj: Any, **kw: Any) -> None:
    """Atomically write ``obj`` as JSON (indented, keys in insertion order; see :func:`jsonable`)."""
    kw.setdefault("indent", 1)
    write_text(path, json.dumps(jsonable(obj), **kw) + "\n")


def write_npy(path: str | os.PathLike[str], array: np.ndarray) -> str:
    """Atomically write ``array`` in .npy format; returns the SHA-256 of the bytes written."""
    h = hashlib.sha256()
    with atomic_open(path, "wb") as f:
        np.lib.format.write_array(_HashingWriter(f, h), np.ascontiguousarray(array), allow_pickle=False)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def remove_stale_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temp files a killed writer left in ``directory``; returns what was removed.

    Only call this while holding the directory's write lock: a live writer's temp file looks the same.
    """
    removed = []
    for p in Path(directory).glob(f".*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


class _HashingWriter:
    """A file-like wrapper that hashes what passes through (numpy writes via ``write``)."""

    def __init__(self, f: IO[bytes], h: Any) -> None:
        self._f, self._h = f, h

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._h.update(view)
        return self._f.write(view)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)
