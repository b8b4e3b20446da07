"""The PhysioNet/CinC Challenge 2017 layout: single-lead AliveCor ECGs with REFERENCE.csv labels.

Layout: ``A00001.hea`` + ``A00001.mat`` (WFDB, 300 Hz, one signal called "ECG"), a ``RECORDS``
list and ``REFERENCE.csv`` with ``record,label`` lines (labels N normal, A AF, O other rhythm,
~ noisy; CRLF line endings, no header). The single lead is recorded between two hands, which
approximates limb lead I; records are therefore reported with lead name ``"I"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from pathlib import Path

import attrs

from augframe.data.fingerprint import content_hash, digest, file_stats
from augframe.data.problems import Problem
from augframe.data.selection import as_classes, limit_per_class
from augframe.data.planned import PlannedSource
from augframe.data.wfdb_io import read_wfdb
from augframe.errors import DataError
from augframe.protocols import Record

CINC2017_LABELS = {"N": "normal sinus rhythm", "A": "atrial fibrillation", "O": "other rhythm", "~": "too noisy"}
CINC2017_FS = 300.0


def read_reference(path: Path) -> dict[str, str]:
    """``{record: label}`` from a REFERENCE.csv (CRLF or LF, optional UTF-8 BOM, no header); bad lines,
    a file that is not UTF-8 text and a path that is not a file raise DataError."""
    if not Path(path).is_file():
        raise DataError(f"{path} is not a file; give the REFERENCE.csv with 'record,label' lines")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = fh.readlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read as UTF-8 text ({exc}); it should hold 'record,label' lines") from exc
    labels: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not parts[0]:
            raise DataError(f"{path}: line {n} is {line!r}; expected 'record,label' (e.g. 'A00001,N')")
        labels[parts[0]] = parts[1]
    return labels


@attrs.define
class CinC2017Source(PlannedSource):
    """Records of a CinC 2017 folder, optionally only some classes and at most N records per class.

    ``limit_per_class`` draws records with ``seed`` (the draw is part of the fingerprint).
    Records in the label file without files, and files without a label, are reported as
    problems (see :attr:`problems` after iterating), not raised.
    """

    root: Path = attrs.field(converter=Path)
    classes: tuple[str, ...] | None = attrs.field(converter=as_classes, default=None)
    limit_per_class: int | None = None
    seed: int = 0
    reference: str = "REFERENCE.csv"
    record_ids: Sequence[str] | None = None
    problems: list[Problem] = attrs.field(factory=list, init=False)

    name = "cinc2017"
    fs = CINC2017_FS

    def __attrs_post_init__(self) -> None:
        if not self.root.is_dir():
            raise DataError(f"CinC 2017 folder {self.root} does not exist; point root at the folder with "
                            "A00001.hea and REFERENCE.csv")

    # --- which records ---------------------------------------------------------------------
    def _labels(self) -> dict[str, str] | None:
        path = self.root / self.reference
        return read_reference(path) if path.exists() else None

    def _all_ids(self, labels: dict[str, str] | None) -> list[str]:
        if self.record_ids is not None:
            return [str(r) for r in self.record_ids]
        on_disk = {p.stem for p in self.root.glob("*.hea")}
        listed = set(labels or ()) | on_disk
        return sorted(listed)

    def selected(self) -> tuple[list[tuple[str, str | None]], list[Problem]]:
        """(record id, label) pairs this source will read, and the problems found choosing them."""
        labels = self._labels()
        problems: list[Problem] = []
        chosen: list[tuple[str, str | None]] = []
        for rid in self._all_ids(labels):
            label = None if labels is None else labels.get(rid)
            if label is None and (labels is not None or self.classes is not None):
                why = (f"{self.reference} is missing" if labels is None
                       else f"not listed in {self.reference}")
                problems.append(Problem(rid, "missing-label", why))
                continue
            if self.classes is not None and label not in self.classes:
                problems.append(Problem(rid, "excluded-class", f"label {label!r}"))
                continue
            chosen.append((rid, label))
        keep = set(limit_per_class([r for r, _ in chosen], [lab for _, lab in chosen],
                                   self.limit_per_class, self.seed))
        return [c for c in chosen if c[0] in keep], problems

    # --- Source protocol (records() comes from PlannedSource) --------------------------------
    def plan(self) -> tuple[list[dict[str, Any]], list[Problem]]:
        chosen, problems = self.selected()
        return [{"id": rid, "label": label} for rid, label in chosen], problems

    def read(self, row: dict[str, Any]) -> Record:
        return read_wfdb(self.root / row["id"], record_id=row["id"], label=row["label"], single_lead_as="I",
                         meta={"record": row["id"]})

    def fingerprint(self) -> str:
        chosen, _ = self.selected()
        files = [self.root / f"{rid}{ext}" for rid, _ in chosen for ext in (".hea", ".mat")]
        return digest({
            "source": self.name,
            "reference": content_hash(self.root / self.reference),
            "files": file_stats(files, self.root),
            "classes": self.classes,
            "limit_per_class": self.limit_per_class,
            "seed": self.seed,
        })
