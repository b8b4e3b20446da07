"""Bad-input bookkeeping: problems are collected per record during a build and reported at the end.

A broken file must not stop a build of 150,000 windows halfway, nor disappear silently. Readers and
the preprocessing add a :class:`Problem` for each record (or window) they skip; a
:class:`BuildReport` counts them by kind, names the records, and decides whether the build may go on
(``strict`` or "nothing usable left" make it fail).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from augframe.errors import DataError

#: Problem kinds, each with a hint on how to fix it.
KINDS: Mapping[str, str] = {
    "unreadable": "the file is corrupt or not a WFDB/array file; re-download or remove it",
    "truncated": "the signal file is shorter than its header says; re-download it",
    "missing-label": "no label for this record; check the label file (REFERENCE.csv, database CSV)",
    "missing-file": "a file the index names is not on disk; re-download or fix the index",
    "too-short": "the record is shorter than one window; lower window_s or set short_records='pad'",
    "unexpected-fs": "the sampling rate is not one the configuration allows (allowed_fs)",
    "missing-lead": "the record lacks the requested lead; pick another lead or 'first'",
    "bad-values": "the signal holds NaN/Inf or is flat over the whole record",
    "excluded-class": "the record's label is not among the requested classes",
    "low-quality": "windows failed the quality gate (flat line, saturation, NaN)",
}


@attrs.frozen
class Problem:
    """One skipped record (or window): which record, what kind of problem, in words."""

    record: str
    kind: str
    message: str = ""

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown problem kind {self.kind!r}; use one of {sorted(KINDS)}")


#: Kinds that are a choice of the configuration rather than a fault in the data.
EXPECTED_KINDS = frozenset({"excluded-class"})


@attrs.define
class BuildReport:
    """Counts and names of what a build skipped, plus what it kept."""

    problems: list[Problem] = attrs.field(factory=list)
    records_seen: int = 0
    records_used: int = 0
    windows_kept: int = 0
    windows_rejected: int = 0

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def extend(self, problems: Iterable[Problem]) -> None:
        self.problems.extend(problems)

    def counts(self) -> dict[str, int]:
        """Number of distinct records per problem kind."""
        per_kind: dict[str, set[str]] = {}
        for p in self.problems:
            per_kind.setdefault(p.kind, set()).add(p.record)
        return {k: len(v) for k, v in sorted(per_kind.items())}

    def records(self, kind: str) -> list[str]:
        return sorted({p.record for p in self.problems if p.kind == kind})

    @property
    def faults(self) -> list[Problem]:
        """Problems that are faults in the data (not configuration choices such as excluded classes)."""
        return [p for p in self.problems if p.kind not in EXPECTED_KINDS]

    def summary(self, max_names: int = 8) -> str:
        """A few lines for the end of a build: kept, then per kind the count and the first names."""
        lines = [
            f"records: {self.records_seen} seen, {self.records_used} used; "
            f"windows: {self.windows_kept} kept, {self.windows_rejected} rejected by the quality gate"
        ]
        for kind, n in self.counts().items():
            names = self.records(kind)
            more = f", ... (+{len(names) - max_names})" if len(names) > max_names else ""
            shown = ", ".join(names[:max_names]) + more
            lines.append(f"  {kind}: {n} record(s) [{shown}] - {KINDS[kind]}")
        return "\n".join(lines)

    def check(self, *, strict: bool, what: str) -> None:
        """Raise when ``strict`` and any fault was seen, or when nothing usable is left."""
        if strict and self.faults:
            raise DataError(f"{what}: strict build stopped on bad input\n{self.summary()}\n"
                            "fix or remove these records, or build with strict=False to skip them")
        if self.windows_kept == 0:
            raise DataError(f"{what}: no usable windows were left\n{self.summary()}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "records_seen": self.records_seen,
            "records_used": self.records_used,
            "windows_kept": self.windows_kept,
            "windows_rejected": self.windows_rejected,
            "counts": self.counts(),
            "problems": [attrs.asdict(p) for p in self.problems],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BuildReport:
        return cls(
            problems=[Problem(**p) for p in d.get("problems", [])],
            records_seen=int(d.get("records_seen", 0)),
            records_used=int(d.get("records_used", 0)),
            windows_kept=int(d.get("windows_kept", 0)),
            windows_rejected=int(d.get("windows_rejected", 0)),
        )
