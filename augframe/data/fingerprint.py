"""Fingerprints of source files: cheap to compute, and different whenever the data could differ.

Signal files are summarised by (relative path, size, modification time): re-reading 150,000
records just to hash them would cost as much as the build it guards. Small index files (label
CSVs, headers) are hashed by content. Any change makes a new cache key; a false change (a copied
tree with new mtimes) only costs a rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


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
