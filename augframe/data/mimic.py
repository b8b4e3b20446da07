"""The MIMIC-IV-ECG layout: record_list.csv, machine_measurements.csv, files/p.../s.../<study>.hea.

Records (10 s, 500 Hz, 12 leads) are named by ``study_id``; ``subject_id`` is the patient.
Labels come from the machine reports ``report_0`` .. ``report_17``:

* ``rule="reference"`` (DiffStyleTS' data_preparation.py): AF when ``report_0`` contains
  "atrial fibrillation" (case-insensitive); normal when ``report_0`` is exactly "Sinus rhythm"
  (also "sinus rhythm" or "SINUS RHYTHM"); everything else "O".
* ``rule="any-report"``: AF when any report line contains the AF pattern; normal when
  ``report_0`` is exactly sinus rhythm and no line mentions AF.

``af_pattern`` (a regular expression, case-insensitive) and ``normal_reports`` change the
phrases. The two CSVs are inner-joined on ``study_id`` as in the reference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from augframe.data.fingerprint import content_hash, digest, file_stats
from augframe.data.problems import Problem
from augframe.data.selection import as_classes, choose_rows
from augframe.data.planned import PlannedSource
from augframe.data.wfdb_io import read_wfdb
from augframe.errors import DataError, require_choice
from augframe.protocols import Record

RULES = ("reference", "any-report")
REPORT_COLUMNS = tuple(f"report_{i}" for i in range(18))


def report_label(reports: Sequence[str | None], *, rule: str = "reference", af_pattern: str = "atrial fibrillation",
                 normal_reports: Sequence[str] = ("Sinus rhythm", "sinus rhythm", "SINUS RHYTHM")) -> str:
    """'A', 'N' or 'O' from the report lines (``reports[0]`` is report_0)."""
    require_choice("mimic rule", rule, RULES)
    lines = [("" if r is None else str(r)).strip() for r in reports]
    first = lines[0] if lines else ""
    af = re.compile(af_pattern, re.IGNORECASE)
    scope = lines[:1] if rule == "reference" else lines
    if any(af.search(line) for line in scope):
        return "A"
    if first in set(normal_reports):
        return "N"
    return "O"


@attrs.define
class MIMICIVECGSource(PlannedSource):
    """MIMIC-IV-ECG records labelled from the machine reports (see the module docstring)."""

    root: Path = attrs.field(converter=Path)
    rule: str = "reference"
    af_pattern: str = "atrial fibrillation"
    normal_reports: tuple[str, ...] = attrs.field(default=("Sinus rhythm", "sinus rhythm", "SINUS RHYTHM"),
                                                  converter=tuple)
    classes: tuple[str, ...] | None = attrs.field(converter=as_classes, default=None)
    limit_per_class: int | None = None
    seed: int = 0
    problems: list[Problem] = attrs.field(factory=list, init=False)

    name = "mimic-iv-ecg"

    def __attrs_post_init__(self) -> None:
        require_choice("mimic rule", self.rule, RULES)
        for f in ("record_list.csv", "machine_measurements.csv"):
            if not (self.root / f).exists():
                raise DataError(f"{self.root / f} does not exist; point root at the MIMIC-IV-ECG folder "
                                "holding record_list.csv, machine_measurements.csv and files/")

    def index(self) -> list[dict[str, Any]]:
        import pandas as pd

        rl = pd.read_csv(self.root / "record_list.csv", dtype={"path": str})
        mm = pd.read_csv(self.root / "machine_measurements.csv", low_memory=False)
        for name, df, need in (("record_list.csv", rl, {"subject_id", "study_id", "path"}),
                               ("machine_measurements.csv", mm, {"study_id", "report_0"})):
            missing = need - set(df.columns)
            if missing:
                raise DataError(f"{self.root / name} lacks column(s) {sorted(missing)}")
        cols = ["study_id"] + [c for c in REPORT_COLUMNS if c in mm.columns]
        df = rl.merge(mm[cols], on="study_id", how="inner")
        rows = []
        for r in df.to_dict("records"):
            reports = [r.get(c) if isinstance(r.get(c), str) else None for c in REPORT_COLUMNS]
            rows.append({"id": str(r["study_id"]), "file": str(r["path"]), "patient": str(r["subject_id"]),
                         "label": report_label(reports, rule=self.rule, af_pattern=self.af_pattern,
                                               normal_reports=self.normal_reports),
                         "report_0": reports[0] or ""})
        return rows

    def plan(self) -> tuple[list[dict[str, Any]], list[Problem]]:
        return choose_rows(self.index(), self.classes, self.limit_per_class, self.seed)

    def read(self, row: dict[str, Any]) -> Record:
        return read_wfdb(self.root / row["file"], record_id=row["id"], label=row["label"],
                         patient_id=row["patient"], meta={"record": row["id"], "report_0": row["report_0"]})

    def fingerprint(self) -> str:
        chosen, _ = self.plan()
        files = [self.root / f"{r['file']}{ext}" for r in chosen for ext in (".hea", ".dat")]
        return digest({"source": self.name, "record_list": content_hash(self.root / "record_list.csv"),
                       "measurements": content_hash(self.root / "machine_measurements.csv"),
                       "files": file_stats(files, self.root),
                       "settings": {"rule": self.rule, "af": self.af_pattern, "normal": self.normal_reports,
                                    "classes": self.classes, "limit": self.limit_per_class, "seed": self.seed}})
