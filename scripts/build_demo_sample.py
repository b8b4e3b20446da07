"""Build the demo sample shipped in augframe/data/demo/ from a local CinC 2017 folder.

    python scripts/build_demo_sample.py --root ../shared/data/cinc2017

Draws ``--per-class`` records of each of N and A (seeded), takes the first quality-passed 10 s
window of each (250 Hz, reference cleaning, in mV) and stores them as int16 microvolts in a
compressed npz, with record ids, labels and window starts. The build is deterministic: the
same data and arguments give the same arrays.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from augframe.data.batches import windows_from_source
from augframe.data.cinc2017 import CinC2017Source
from augframe.data.demo import DEMO_DIR, DEMO_FILE, SCALE_UV
from augframe.data.preprocess import PreprocessConfig


def build(root: Path, per_class: int, seed: int, out: Path) -> Path:
    classes = ("N", "A")
    source = CinC2017Source(root, classes=classes, limit_per_class=per_class, seed=seed)
    config = PreprocessConfig(leads="first", max_windows_per_record=1)
    batch, report = windows_from_source(source, config, classes)
    print(report.summary())
    x = batch.numpy()[:, 0, :]
    q = np.round(x * SCALE_UV)
    if np.abs(q).max() > np.iinfo(np.int16).max:
        raise SystemExit("a window exceeds the int16 range in microvolts; raise SCALE_UV's headroom")
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        signals_uv=q.astype(np.int16),
        labels=batch.labels.astype(np.int8),
        class_names=np.array(classes),
        records=batch.meta["record"].astype(str),
        ids=np.array(batch.ids),
        start_s=batch.meta["start_s"].astype(np.float32),
        quality=batch.meta["quality"].astype(np.float32),
        fs=np.float32(batch.fs),
        lead=np.array("I"),
        provenance=np.array(json.dumps({
            "source": "PhysioNet/CinC Challenge 2017 (training set, REFERENCE.csv labels)",
            "per_class_records": per_class, "seed": seed, "preprocess": config.to_dict(),
            "script": "scripts/build_demo_sample.py",
        })),
    )
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(batch)} windows, "
          f"{int((batch.labels == 0).sum())} N / {int((batch.labels == 1).sum())} A")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True, help="CinC 2017 folder (REFERENCE.csv, A*.hea/.mat)")
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2017)
    ap.add_argument("--out", type=Path, default=DEMO_DIR / DEMO_FILE)
    args = ap.parse_args()
    build(args.root, args.per_class, args.seed, args.out)


if __name__ == "__main__":
    main()
