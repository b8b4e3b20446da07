"""Fingerprints of data: a cheap key for caches, and a content identity for what a run was made from.

Source files are summarised by (relative path, size, modification time): re-reading 150,000
records just to hash them would cost as much as the cache build it guards. Small index files
(label CSVs, headers) are hashed by content. Any change makes a new cache key; a false change
(a copied tree with new mtimes) only costs a rebuild.

What a bank is bound to is the data's content (:func:`windows_identity`): the bytes of every
window with its label, record and patient. A copied tree rebuilds its cache to the same windows
and so keeps its runs resumable and evaluable; a changed recording changes the identity.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def file_stats(paths: Iterable[Path], root: Path) -> list[list[Any]]:
    """[relative path, size, mtime_ns] of each path (missing files appear with size -1)."""
    out = []
    for p in paths:
        rel = os.path.relpath(p, root)
        try:
            st = p.stat()
            out.append([rel, st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([rel, -1, 0])
    return out


def content_hash(path: Path) -> str:
    """sha256 of a (small) file's bytes, or 'missing'."""
    if not path.exists():
        return "missing"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest(obj: Mapping[str, Any] | list[Any]) -> str:
    """sha256 of a JSON-serialisable object in canonical form."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def signals_sha256(signals: np.ndarray) -> str:
    """sha256 of a window array as float32 C-order bytes (what a window cache writes to disk)."""
    return hashlib.sha256(np.ascontiguousarray(signals, dtype=np.float32).tobytes()).hexdigest()


def windows_identity(signals_sha: str, labels: Iterable[int] | None, records: Iterable[Any], patients: Iterable[Any],
                     fs: float, leads: Sequence[str]) -> str:
    """The content identity of a set of windows: equal exactly when the data a run sees is equal."""
    return digest({"signals": signals_sha, "fs": float(fs), "leads": list(leads),
                   "labels": None if labels is None else np.asarray(list(labels), dtype=np.int64).tolist(),
                   "records": [str(r) for r in records], "patients": [str(p) for p in patients]})
