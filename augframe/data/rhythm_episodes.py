"""Rhythm episodes of WFDB records as labelled records, or whole records of a one-class database.

In the MIT-BIH convention (mitdb, afdb, ltafdb, ...) a rhythm change is an annotation with symbol
``+`` whose ``aux_note`` names the new rhythm: ``(AFIB``, ``(N``, ``(AFL``, ``(J``, ... The rhythm
lasts until the next change or the end of the record; the part before the first change has no
annotated rhythm and is not used. :class:`WFDBRhythmSource` yields each episode whose code the
``rhythms`` map names as its own :class:`~augframe.protocols.Record` (the episode's samples only),
so the preprocessing cuts windows that lie wholly inside one episode. A database of one class (an
AF-only or AF-free Holter set, without rhythm annotations) is read with ``one_class``: every record,
whole, gets that class.

Each record carries ``meta['recording']`` (the record file) and ``meta['onset_s']`` (where the
episode starts in it), and a patient id from ``patient_ids`` or a grouping rule
(:mod:`augframe.data.subjects`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from augframe.data.fingerprint import content_hash, digest, file_stats
from augframe.data.planned import PlannedSource
from augframe.data.problems import Problem
from augframe.data.subjects import SUBJECT_RULES
from augframe.data.wfdb_io import RecordReadError, read_wfdb
from augframe.errors import DataError, ValidationError, require_choice
from augframe.protocols import Record
from augframe.signals import canonical_lead

#: Rhythm codes (MIT-BIH aux notes) -> class names, unless a source says otherwise.
DEFAULT_RHYTHMS: Mapping[str, str] = {"(AFIB": "A", "(N": "N"}
RHYTHM_CHANGE = "+"


@attrs.frozen
class Episode:
    """One stretch of a record in one rhythm: native samples ``start`` (first) to ``end`` (exclusive)."""

    start: int
    end: int
    rhythm: str
    index: int


def rhythm_episodes(samples: Sequence[int], notes: Sequence[str], n_samples: int) -> list[Episode]:
    """Episodes from rhythm-change annotations (sample, aux note) of a record ``n_samples`` long.

    Each change starts an episode that ends at the next change or the record's end; the aux note
    is stripped of blanks and NUL padding. Changes at or past the end, and empty episodes, are dropped.
    """
    order = sorted(range(len(samples)), key=lambda i: int(samples[i]))
    starts = [int(samples[i]) for i in order]
    codes = [str(notes[i]).strip().rstrip("\x00").strip() for i in order]
    out = []
    for k, (start, code) in enumerate(zip(starts, codes)):
        end = starts[k + 1] if k + 1 < len(starts) else n_samples
        end = min(end, n_samples)
        if 0 <= start < end:
            out.append(Episode(start, end, code, k))
    return out


def read_episodes(path: Path, annotator: str, n_samples: int) -> list[Episode]:
    """The rhythm episodes in ``path.<annotator>`` (annotations with symbol '+' and a '(' aux note)."""
    import wfdb

    ann = wfdb.rdann(str(path), annotator)
    notes = ann.aux_note or [""] * len(ann.sample)
    keep = [i for i, (sym, note) in enumerate(zip(ann.symbol, notes))
            if sym == RHYTHM_CHANGE and str(note).strip().startswith("(")]
    return rhythm_episodes([ann.sample[i] for i in keep], [notes[i] for i in keep], n_samples)


def _rhythms(value: Mapping[str, str] | None) -> dict[str, str]:
    out = {str(k).strip(): str(v) for k, v in dict(value if value is not None else DEFAULT_RHYTHMS).items()}
    if not out:
        raise ValidationError("rhythms is empty; map rhythm codes to classes, e.g. {'(AFIB': 'A', '(N': 'N'}")
    return out


def _lead(value: str | None) -> str | None:
    return None if value is None else canonical_lead(value)


@attrs.define
class WFDBRhythmSource(PlannedSource):
    """Labelled rhythm episodes (or whole one-class records) of the WFDB records under ``root``.

    Args:
        root: folder of the database.
        records_list: record names relative to ``root`` (default: the ``RECORDS`` file, else every
            ``.hea`` under root).
        one_class: label every record, whole, with this class; no annotations are read.
        annotator: extension of the rhythm annotation files (``atr`` in the MIT-BIH databases).
        rhythms: rhythm code -> class; episodes of other codes are not used.
        channel: which signal of the record to read (0 = the first).
        lead_as: report that signal under this standard lead name (Holter headers often say just
            "ECG"); None keeps the header's name.
        subjects: grouping rule when ``patient_ids`` does not name a record's subject
            (``record``, ``pairs``, ``aftdb``; see :mod:`augframe.data.subjects`).
        patient_ids: record -> subject, overriding the rule.
    """

    root: Path = attrs.field(converter=Path)
    records_list: Sequence[str] | None = None
    one_class: str | None = None
    annotator: str = "atr"
    rhythms: Mapping[str, str] = attrs.field(default=None, converter=_rhythms)
    channel: int = 0
    lead_as: str | None = attrs.field(default=None, converter=_lead)
    subjects: str = "record"
    patient_ids: Mapping[str, str] | None = None
    problems: list[Problem] = attrs.field(factory=list, init=False)

    name = "wfdb-rhythm"

    def __attrs_post_init__(self) -> None:
        if not self.root.is_dir():
            raise DataError(f"WFDB folder {self.root} does not exist")
        require_choice("subjects", self.subjects, SUBJECT_RULES)
        if isinstance(self.channel, bool) or not isinstance(self.channel, int) or self.channel < 0:
            raise ValidationError(f"channel={self.channel!r} must be a signal index 0, 1, ...")
        if self.one_class is not None and not str(self.one_class).strip():
            raise ValidationError("one_class is empty; give the class name of every record, e.g. 'A'")

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes this source can yield, in first-seen order."""
        if self.one_class is not None:
            return (self.one_class,)
        return tuple(dict.fromkeys(self.rhythms.values()))

    # --- which records and episodes --------------------------------------------------------
    def _ids(self) -> list[str]:
        if self.records_list is not None:
            return [str(r) for r in self.records_list]
        listed = self.root / "RECORDS"
        if listed.exists():
            return [line.strip() for line in listed.read_text().splitlines() if line.strip()]
        return sorted(str(p.relative_to(self.root).with_suffix("")) for p in self.root.rglob("*.hea"))

    def _subjects(self, ids: list[str]) -> dict[str, str]:
        subjects = SUBJECT_RULES[self.subjects](ids, self.root)
        return {**subjects, **{str(k): str(v) for k, v in (self.patient_ids or {}).items() if str(k) in subjects}}

    def _episode_rows(self, rid: str, patient: str) -> list[dict[str, Any]]:
        import wfdb

        path = self.root / rid
        if not path.with_suffix(f".{self.annotator}").exists():
            raise RecordReadError(Problem(rid, "missing-file", f"{path.name}.{self.annotator} (rhythm annotations) "
                                          "is missing; give the right annotator, or one_class for a one-class set"))
        try:
            header = wfdb.rdheader(str(path))
            episodes = read_episodes(path, self.annotator, int(header.sig_len))
        except Exception as exc:  # wfdb raises many types on bad files
            raise RecordReadError(Problem(rid, "unreadable", f"{type(exc).__name__}: {exc}")) from exc
        return [{"id": f"{rid}#e{ep.index}", "record": rid, "label": self.rhythms[ep.rhythm], "patient": patient,
                 "span": (ep.start, ep.end), "fs": float(header.fs), "rhythm": ep.rhythm}
                for ep in episodes if ep.rhythm in self.rhythms]

    def plan(self) -> tuple[list[dict[str, Any]], list[Problem]]:
        ids = self._ids()
        subjects = self._subjects(ids)
        rows: list[dict[str, Any]] = []
        problems: list[Problem] = []
        for rid in ids:
            if self.one_class is not None:
                rows.append({"id": rid, "record": rid, "label": self.one_class, "patient": subjects[rid],
                             "span": None, "fs": None, "rhythm": None})
                continue
            try:
                rows += self._episode_rows(rid, subjects[rid])
            except RecordReadError as err:
                problems.append(err.problem)
        return rows, problems

    def read(self, row: dict[str, Any]) -> Record:
        span = row["span"]
        onset = 0.0 if span is None else span[0] / row["fs"]
        record = read_wfdb(self.root / row["record"], record_id=row["id"], label=row["label"],
                           patient_id=row["patient"], channels=[self.channel], samples=span,
                           meta={"record": row["record"], "recording": row["record"], "onset_s": onset,
                                 "rhythm": row["rhythm"]})
        return record if self.lead_as is None else attrs.evolve(record, leads=(self.lead_as,))

    def fingerprint(self) -> str:
        ids = self._ids()
        headers = [self.root / f"{rid}.hea" for rid in ids]
        signal_files = sorted({p.parent / line.split()[0] for p in headers if p.exists()
                               for line in p.read_text().splitlines()[1:] if line.strip() and not line.startswith("#")})
        annotations = [] if self.one_class is not None else [self.root / f"{rid}.{self.annotator}" for rid in ids]
        return digest({"source": self.name, "headers": [content_hash(p) for p in headers],
                       "files": file_stats(signal_files + annotations, self.root), "one_class": self.one_class,
                       "annotator": self.annotator, "rhythms": self.rhythms, "channel": self.channel,
                       "lead_as": self.lead_as, "subjects": self.subjects, "patients": dict(self.patient_ids or {})})
