"""Sources that plan first and read later, so a cache build can read records in worker processes.

``plan()`` returns small, picklable row descriptions of the records to read (after label and
class selection) plus the problems met while choosing them; ``read(row)`` reads one record or
raises :class:`~augframe.data.wfdb_io.RecordReadError`. ``records()`` (the Source protocol) is
the two together. A source without ``plan``/``read`` still works; it is just read in one process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeGuard

from augframe.data.problems import Problem
from augframe.data.wfdb_io import RecordReadError
from augframe.protocols import Record


class PlannedSource:
    """Mixin: ``records()`` from ``plan()`` and ``read()``; read problems land in ``problems``."""

    problems: list[Problem]

    def plan(self) -> tuple[list[dict[str, Any]], list[Problem]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, row: dict[str, Any]) -> Record:  # pragma: no cover - abstract
        raise NotImplementedError

    def records(self) -> Iterator[Record]:
        rows, problems = self.plan()
        self.problems = list(problems)
        for row in rows:
            try:
                yield self.read(row)
            except RecordReadError as err:
                self.problems.append(err.problem)


def is_planned(source: Any) -> TypeGuard[PlannedSource]:
    return callable(getattr(source, "plan", None)) and callable(getattr(source, "read", None))
