"""Any WFDB records: a folder searched for ``.hea`` files, or an explicit record list.

For databases without a dedicated reader. Labels come from a mapping or a two-column
``record,label`` CSV (as CinC's REFERENCE.csv); without labels records are yielded unlabelled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from pathlib import Path

import attrs

from augframe.data.cinc2017 import read_reference
from augframe.data.fingerprint import content_hash, digest, file_stats
from augframe.data.problems import Problem
from augframe.data.selection import as_classes
from augframe.data.planned import PlannedSource
from augframe.data.wfdb_io import read_wfdb
from augframe.errors import DataError
from augframe.protocols import Record


def _labels(value: Mapping[str, str] | str | os.PathLike[str] | None, root: Path) -> dict[str, str] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    path = Path(value)
    path = path if path.is_absolute() else root / path
    if not path.exists():
        raise DataError(f"label file {path} does not exist; give a 'record,label' CSV or a mapping")
    return read_reference(path)


@attrs.define
class WFDBSource(PlannedSource):
    """WFDB records under ``root`` (``records`` names them relative to root, without extension).

    ``single_lead_as`` names the lead of single-lead records whose header calls it something
    non-standard (e.g. "ECG"); ``lead_aliases`` maps other header names to standard leads
    (``{"ECG1": "II"}``); records whose names stay non-standard are reported when preprocessed.
    ``classes`` keeps only records with those labels.
    """

    root: Path = attrs.field(converter=Path)
    records_list: Sequence[str] | None = None
    labels: Mapping[str, str] | str | os.PathLike[str] | None = None
    classes: tuple[str, ...] | None = attrs.field(converter=as_classes, default=None)
    single_lead_as: str | None = None
    patient_ids: Mapping[str, str] | None = None
    lead_aliases: Mapping[str, str] | None = None
    problems: list[Problem] = attrs.field(factory=list, init=False)

    name = "wfdb"

    def __attrs_post_init__(self) -> None:
        if not self.root.is_dir():
            raise DataError(f"WFDB folder {self.root} does not exist")

    def _ids(self) -> list[str]:
        if self.records_list is not None:
            return [str(r) for r in self.records_list]
        return sorted(str(p.relative_to(self.root).with_suffix("")) for p in self.root.rglob("*.hea"))

    def plan(self) -> tuple[list[dict[str, Any]], list[Problem]]:
        labels = _labels(self.labels, self.root)
        rows, problems = [], []
        for rid in self._ids():
            label = None if labels is None else labels.get(Path(rid).name, labels.get(rid))
            if labels is not None and label is None:
                problems.append(Problem(rid, "missing-label", "not in the label file"))
            elif self.classes is not None and label not in self.classes:
                problems.append(Problem(rid, "excluded-class", f"label {label!r}"))
            else:
                pid = None if self.patient_ids is None else self.patient_ids.get(rid)
                rows.append({"id": rid, "label": label, "patient": pid})
        return rows, problems

    def read(self, row: dict[str, Any]) -> Record:
        return read_wfdb(self.root / row["id"], record_id=row["id"], label=row["label"], patient_id=row["patient"],
                         single_lead_as=self.single_lead_as, lead_aliases=self.lead_aliases,
                         meta={"record": row["id"]})

    def fingerprint(self) -> str:
        ids = self._ids()
        files = [self.root / f"{rid}.hea" for rid in ids]
        signal_files = sorted({p.parent / line.split()[0] for p in files if p.exists()
                               for line in p.read_text().splitlines()[1:] if line.strip() and not line.startswith("#")})
        labels = self.labels if isinstance(self.labels, Mapping) or self.labels is None else \
            content_hash(Path(self.labels) if Path(self.labels).is_absolute() else self.root / self.labels)
        return digest({"source": self.name, "headers": [content_hash(p) for p in files],
                       "files": file_stats(signal_files, self.root), "labels": labels,
                       "classes": self.classes, "single_lead_as": self.single_lead_as,
                       "aliases": dict(self.lead_aliases or {}),
                       "patients": dict(self.patient_ids or {})})
