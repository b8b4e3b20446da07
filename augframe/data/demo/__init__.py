"""The demo sample shipped with augframe: CinC 2017 N and A windows, so the demo needs no download.

Built by ``scripts/build_demo_sample.py``; see LICENSE.txt and ATTRIBUTION.md in this folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from augframe.errors import DataError
from augframe.signals import ECGBatch

DEMO_DIR = Path(__file__).resolve().parent
DEMO_FILE = "cinc2017_demo.npz"
#: Stored values are int16 in units of 1/SCALE_UV mV (microvolts).
SCALE_UV = 1000.0


def demo_path() -> Path:
    path = DEMO_DIR / DEMO_FILE
    if not path.exists():
        raise DataError(f"the demo sample {path} is missing; rebuild it with "
                        "python scripts/build_demo_sample.py --root <cinc2017 folder>")
    return path


def demo_windows(*, normalise: str | None = "zscore", classes: tuple[str, ...] = ("N", "A")) -> ECGBatch:
    """The shipped demo windows as an ECGBatch: float32 [N, 1, 2500] at 250 Hz, labels 0=N, 1=A.

    ``normalise`` as in :func:`augframe.data.cinc2017_windows` (fitted on the demo windows).
    ``classes`` picks and orders classes (e.g. ``("A",)``). meta: ``record``, ``patient``,
    ``start_s``, ``quality``.
    """
    from augframe.data.batches import normalise_batch

    with np.load(demo_path(), allow_pickle=False) as z:
        names = tuple(str(c) for c in z["class_names"])
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise DataError(f"the demo sample has classes {names}; {unknown} are not among them")
        labels_src = z["labels"].astype(np.int64)
        keep = np.isin(labels_src, [names.index(c) for c in classes])
        labels = np.array([classes.index(names[i]) for i in labels_src[keep]], dtype=np.int64)
        signals = (z["signals_uv"][keep].astype(np.float32) / SCALE_UV)[:, None, :]
        records = z["records"][keep].astype(str)
        starts = z["start_s"][keep]
        ids = [str(i) for i in z["ids"][keep]]
        batch = ECGBatch(signals, float(z["fs"]), (str(z["lead"]),), labels=labels, class_names=classes, ids=ids,
                         meta={"record": records, "patient": records, "start_s": starts, "quality": z["quality"][keep]})
    return normalise_batch(batch, normalise)[0]


def demo_provenance() -> dict:
    """How the demo sample was built (source, seed, preprocessing)."""
    with np.load(demo_path(), allow_pickle=False) as z:
        return json.loads(str(z["provenance"]))


class DemoSource:
    """The shipped demo windows as a Source (source name ``"demo"`` in recipes): one record per window.

    Records are the stored 10 s windows at 250 Hz in mV, already cleaned; recipes should use
    ``cleaning = "none"`` so they are not filtered twice. ``classes`` keeps only those labels.
    """

    name = "demo"

    def __init__(self, classes: tuple[str, ...] | list[str] | None = None) -> None:
        self.classes = None if classes is None else tuple(classes)
        self.problems: list = []

    def records(self):
        from augframe.protocols import Record

        self.problems = []
        with np.load(demo_path(), allow_pickle=False) as z:  # each z[key] decompresses: read once
            arrays = {k: z[k] for k in ("class_names", "labels", "records", "signals_uv", "ids", "fs", "lead")}
        names = tuple(str(c) for c in arrays["class_names"])
        fs, lead = float(arrays["fs"]), str(arrays["lead"])
        for i, lab in enumerate(arrays["labels"]):
            label = names[int(lab)]
            if self.classes is not None and label not in self.classes:
                continue
            rid = str(arrays["records"][i])
            sig = (arrays["signals_uv"][i].astype(np.float32) / SCALE_UV)[None, :]
            yield Record(id=rid, signal=sig, fs=fs, leads=(lead,), label=label, patient_id=rid,
                         meta={"record": rid, "demo_window": str(arrays["ids"][i])})

    def fingerprint(self) -> str:
        from augframe.data.fingerprint import content_hash, digest

        return digest({"source": self.name, "file": content_hash(demo_path()), "classes": self.classes})
