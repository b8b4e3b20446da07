"""Near-copy check of a run's synthetic bank against the shipped generator's training windows.

    python scripts/check_near_copies.py runs/quickstart --windows /tmp/af7/windows.npz

``--windows`` is the file `scripts/train_demo_models.py data` writes (its ``split == "train"``
rows are exactly what the shipped DiffStyleTS was trained on). Uses the registry's ``near-copy``
filter (shift-tolerant max normalised cross-correlation, threshold 0.9) and prints, for the
synthetic ECGs and, as a yardstick, for the run's real test ECGs (never in training): how many
exceed the threshold (values below it are pruned bounds, so only the verdict is printed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--windows", type=Path, required=True)
    p.add_argument("--threshold", type=float, default=0.9)
    args = p.parse_args()
    from augframe.bank import Bank
    from augframe.data import demo_windows
    from augframe.plugins import Registry
    from augframe.signals import ECGBatch

    d = np.load(args.windows)
    tr = d["split"] == "train"
    train = ECGBatch(d["x"][tr], 250.0, ("I",), labels=d["y"][tr], class_names=("N", "A"))
    gate = Registry.discover().create("filter", "near-copy", {"train": train, "threshold": args.threshold,
                                                            "device": "cpu"})
    synth = Bank.open(args.run / "bank").batch()
    demo = demo_windows(normalise=None)
    out = {"training_windows": int(tr.sum()), "threshold": args.threshold}
    for name, batch in (("synthetic", synth), ("real demo (held out)", demo)):
        rep = gate.evaluate(batch)
        v = rep.value
        # below the threshold the filter prunes with an upper bound, so only the verdict is exact
        out[name] = {"ecgs": int(len(v)), "near_copies": int((~rep.result.accept).sum()),
                     "pairs_checked_exactly": int(rep.pairs_checked_exactly)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
