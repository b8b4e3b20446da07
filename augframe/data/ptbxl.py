"""The PTB-XL layout: ptbxl_database.csv with SCP statements, records100/ and records500/, 12 leads.

Each row names a record (``filename_lr`` at 100 Hz, ``filename_hr`` at 500 Hz), its patient and
its recommended stratified fold (``strat_fold`` 1-10). Rhythm labels come from ``scp_codes``, a
``{statement: likelihood}`` mapping: ``"A"`` (atrial fibrillation) when an ``af_codes`` statement
has likelihood >= ``min_likelihood``, ``"N"`` (sinus rhythm) when an ``sr_codes`` statement does and
no AF statement does, ``"O"`` otherwise. PTB-XL gives rhythm statements likelihood 0 ("no
likelihood stated"), so the default threshold 0 means "the statement is present".
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from augframe.data.fingerprint import content_hash, digest, file_stats
from augframe.data.problems import Problem
from augframe.data.selection import as_classes, choose_rows
from augframe.data.planned import PlannedSource
from augframe.data.wfdb_io import read_wfdb
from augframe.errors import DataError, ValidationError
from augframe.protocols import Record


def rhythm_label(codes: Mapping[str, float], af_codes: Sequence[str], sr_codes: Sequence[str],
                 min_likelihood: float) -> str:
    """'A', 'N' or 'O' from an SCP statement mapping (see the module docstring)."""
    has = {k for k, v in codes.items() if float(v) >= min_likelihood}
    if has & set(af_codes):
        return "A"
    if has & set(sr_codes):
        return "N"
    return "O"


def _int_str(value: Any) -> str | None:
    try:
        return str(int(float(value)))
    except (TypeError, ValueError):
        return None


@attrs.define
class PTBXLSource(PlannedSource):
    """PTB-XL records at ``resolution`` 100 or 500 Hz, labelled N/A/O by rhythm statements.

    ``folds`` keeps only rows of those ``strat_fold`` values; ``classes`` only those labels;
    ``limit_per_class`` draws at most that many records per label with ``seed``.
    """

    root: Path = attrs.field(converter=Path)
    resolution: int = 500
    af_codes: tuple[str, ...] = attrs.field(default=("AFIB",), converter=tuple)
    sr_codes: tuple[str, ...] = attrs.field(default=("SR",), converter=tuple)
    min_likelihood: float = 0.0
    classes: tuple[str, ...] | None = attrs.field(converter=as_classes, default=None)
    folds: tuple[int, ...] | None = attrs.field(
        default=None, converter=lambda v: None if v is None else tuple(int(f) for f in v))
    limit_per_class: int | None = None
    seed: int = 0
    database: str = "ptbxl_database.csv"
    problems: list[Problem] = attrs.field(factory=list, init=False)

    name = "ptbxl"

    def __attrs_post_init__(self) -> None:
        if self.resolution not in (100, 500):
            raise ValidationError(f"ptbxl resolution={self.resolution}; use 100 (records100) or 500 (records500)")
        if not (self.root / self.database).exists():
            raise DataError(f"{self.root / self.database} does not exist; point root at the PTB-XL folder "
                            "holding ptbxl_database.csv and records100/ or records500/")
        folder = self.root / f"records{self.resolution}"
        if not folder.is_dir():
            other = 100 if self.resolution == 500 else 500
            hint = (f"; records{other}/ is there: use resolution={other}"
                    if (self.root / f"records{other}").is_dir() else "")
            raise DataError(f"{folder} does not exist{hint}")

    def index(self) -> list[dict[str, Any]]:
        """The selected rows: ecg_id, file, label, statements, patient, strat_fold."""
        import pandas as pd

        df = pd.read_csv(self.root / self.database)
        need = {"ecg_id", "patient_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr"}
        missing = need - set(df.columns)
        if missing:
            raise DataError(f"{self.root / self.database} lacks column(s) {sorted(missing)}")
        col = "filename_lr" if self.resolution == 100 else "filename_hr"
        rows = []
        for r in df.itertuples(index=False):
            fold = _int_str(r.strat_fold)
            if self.folds is not None and (fold is None or int(fold) not in self.folds):
                continue
            try:
                codes = {str(k): float(v) for k, v in ast.literal_eval(r.scp_codes).items()}
            except (ValueError, SyntaxError, AttributeError):
                codes = None
            rows.append({
                "id": f"{int(r.ecg_id):05d}", "file": str(getattr(r, col)), "statements": codes,
                "label": None if codes is None
                else rhythm_label(codes, self.af_codes, self.sr_codes, self.min_likelihood),
                "patient": _int_str(r.patient_id), "strat_fold": fold,
            })
        return rows

    def plan(self) -> tuple[list[dict[str, Any]], list[Problem]]:
        return choose_rows(self.index(), self.classes, self.limit_per_class, self.seed, _missing_statements)

    def read(self, row: dict[str, Any]) -> Record:
        return read_wfdb(self.root / row["file"], record_id=row["id"], label=row["label"],
                         statements=row["statements"], patient_id=row["patient"],
                         meta={"record": row["id"], "strat_fold": row["strat_fold"]})

    def fingerprint(self) -> str:
        chosen, _ = self.plan()
        files = [self.root / f"{r['file']}{ext}" for r in chosen for ext in (".hea", ".dat")]
        return digest({"source": self.name, "database": content_hash(self.root / self.database),
                       "files": file_stats(files, self.root), "settings": {
                           "resolution": self.resolution, "af": self.af_codes, "sr": self.sr_codes,
                           "min_likelihood": self.min_likelihood, "classes": self.classes, "folds": self.folds,
                           "limit": self.limit_per_class, "seed": self.seed}})


def _missing_statements(row: dict[str, Any]) -> Problem | None:
    if row["statements"] is None:
        return Problem(row["id"], "missing-label", "scp_codes is not a {code: likelihood} mapping")
    return None
