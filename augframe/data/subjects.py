"""Which records of a database come from one subject: named grouping rules for PhysioNet sets.

Windows of one subject must stay together (in a split, in a bootstrap over subjects), so a source
that knows no patient ids groups records by one of these rules, each derived from what the
database's own files and description say:

* ``"record"``: every record is its own subject.
* ``"pairs"``: consecutive numbered records are one subject, n01+n02, n03+n04, ... The PAF
  Prediction Challenge Database (afpdb) stores each subject's "record set" as two 30-minute
  excerpts with consecutive names. (Its description also says the 50 learning record sets come
  from 48 subjects; which two subjects gave two sets is not published, so the rule cannot join them.)
* ``"aftdb"``: the AF Termination Challenge Database; see :func:`aftdb_subjects`.

A subject id is the id of the first of its records (sorted), so it is readable and stable.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from augframe.errors import DataError

_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def _grouped(ids: Sequence[str], pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """{record: subject} from 'same subject' links (union-find); the subject is a group's first id."""
    parent = {i: i for i in ids}

    def root(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {i: root(i) for i in ids}


def record_subjects(ids: Sequence[str], root: Path) -> dict[str, str]:
    """Every record its own subject."""
    return {i: i for i in ids}


def paired_subjects(ids: Sequence[str], root: Path) -> dict[str, str]:
    """Records numbered 2k-1 and 2k (same folder and prefix) are one subject: n01+n02, n03+n04, ..."""
    keys = {}
    for rid in ids:
        path = Path(rid)
        m = _NUMBERED.match(path.name)
        if m is None:
            raise DataError(f"record {rid!r} does not end in a number, so subjects='pairs' cannot pair it; "
                            "use subjects='record' or give patient_ids")
        keys[rid] = (str(path.parent), m.group(1), (int(m.group(2)) + 1) // 2)
    by_key: dict[tuple[str, str, int], list[str]] = {}
    for rid, key in keys.items():
        by_key.setdefault(key, []).append(rid)
    return _grouped(ids, [(members[0], other) for members in by_key.values() for other in members[1:]])


def aftdb_subjects(ids: Sequence[str], root: Path) -> dict[str, str]:
    """Subjects of the AF Termination Challenge Database (learning-set n/s/t, test-set-a a, test-set-b b).

    No patient ids are published; what the files show, and how it is used:

    1. ``s<k>`` and ``t<k>`` of the learning set are one long-term recording: group S ends one
       minute before AF terminates, group T at termination, and each t record's header base time
       starts one minute after its s record's (s01 19:32:13, t01 19:33:14).
    2. Holter calibration: records whose headers carry the same ADC gains, other than the set's
       most common (nominal) gains, come from one recording (e.g. a01 and a08; s01, t01, b14, b16).
    3. By rule 2 the test-set-b records come in pairs from the learning set's S/T subjects (4 of
       its 10 pairs are identified so). The other 12 b records have the nominal gains, so the files
       cannot say which S/T subject each belongs to: they are grouped, conservatively, with every
       nominal-gain S/T subject into one group.

    Every other record is its own subject (the files cannot rule out that two of them share a
    recording; nothing in them says so). The rule looks at every header under ``root``, so a
    subset of records gets the same subjects as the whole database.
    """
    import wfdb

    wanted = list(ids)
    ids = sorted(set(wanted) | {str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.hea")})
    gains: dict[str, tuple[float, ...]] = {}
    for rid in ids:
        try:
            header = wfdb.rdheader(str(root / rid))
        except Exception as exc:  # wfdb raises many types on a bad header
            raise DataError(f"cannot read the header of {rid} for subjects='aftdb': {exc}") from exc
        gains[rid] = tuple(round(float(g), 3) for g in header.adc_gain)
    nominal = Counter(gains.values()).most_common(1)[0][0] if gains else ()
    kind = {rid: Path(rid).name[:1] for rid in ids}
    number = {rid: Path(rid).name[1:] for rid in ids}
    links: list[tuple[str, str]] = []
    s_records = {number[r]: r for r in ids if kind[r] == "s"}
    links += [(s_records[number[r]], r) for r in ids if kind[r] == "t" and number[r] in s_records]
    by_gain: dict[tuple[float, ...], list[str]] = {}
    for rid in ids:
        if gains[rid] != nominal:
            by_gain.setdefault(gains[rid], []).append(rid)
    links += [(members[0], other) for members in by_gain.values() for other in members[1:]]
    pooled = [r for r in ids if kind[r] in "stb" and gains[r] == nominal]
    links += [(pooled[0], other) for other in pooled[1:]]
    subjects = _grouped(ids, links)
    return {rid: subjects[rid] for rid in wanted}


SUBJECT_RULES: Mapping[str, Callable[[Sequence[str], Path], dict[str, str]]] = {
    "record": record_subjects,
    "pairs": paired_subjects,
    "aftdb": aftdb_subjects,
}
