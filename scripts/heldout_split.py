"""Write the record split of recipes/afib-cinc-cpu-full.toml: evaluation records the shipped models never saw.

    python scripts/train_demo_models.py data --out /tmp/af7          # the shipped models' own split
    python scripts/heldout_split.py --windows /tmp/af7/windows.npz --cinc ../shared/data/cinc2017 \
        --out recipes/splits/cinc2017-heldout.json

The result is a 2-fold ``augframe.data.splits.Split`` over every CinC 2017 N and A record:

* fold 0 (the pipeline's test side, the evaluators' real ECGs): every A record outside the shipped
  DiffStyleTS's training part, plus N records outside it, drawn with ``--seed`` until the N windows
  are ``--n-per-a`` times the A windows (CinC holds seven N records per A record; an evaluation set
  of ~8 % AF would let a classifier that always answers N score 92 % accuracy);
* fold 1 (the training side: the generator's sources and the near-copy gate's reference set): all
  other records, i.e. the shipped generator's training records and the N records not drawn.

So no evaluation record was seen by the shipped generator, and the evaluation set is class-mixed.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from augframe.data.splits import Split


def windows_per_record(root: Path, record: str, window_s: float) -> int:
    """Whole ``window_s`` windows in a record, from its WFDB header (samples / fs)."""
    first = (root / f"{record}.hea").read_text().split("\n", 1)[0].split()
    fs, n = float(first[2].split("/")[0]), int(first[3])
    return int(n / fs // window_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=Path, required=True, help="windows.npz from train_demo_models.py data")
    ap.add_argument("--cinc", type=Path, required=True, help="CinC 2017 training folder (REFERENCE.csv)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n-per-a", type=float, default=2.0)
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=2017)
    ap.add_argument("--unseen-train-side", type=int, default=None, metavar="N_RECORDS",
                    help="make BOTH sides unseen by the shipped generator: its training records are excluded "
                         "(fold -1), the unseen A records are split in half between test and training side, and "
                         "N_RECORDS unseen N records go to the training side (the rest of N is excluded)")
    args = ap.parse_args()

    d = np.load(args.windows)
    seen = set(np.asarray(d["rec"])[np.asarray(d["split"]) == "train"].astype(str).tolist())
    with open(args.cinc / "REFERENCE.csv") as fh:
        labels = {r[0]: r[1] for r in csv.reader(fh) if len(r) == 2 and r[1] in ("N", "A")}
    count = {r: windows_per_record(args.cinc, r, args.window_s) for r in labels}
    unseen_a = sorted(r for r, c in labels.items() if c == "A" and r not in seen and count[r] > 0)
    unseen_n = np.array(sorted(r for r, c in labels.items() if c == "N" and r not in seen and count[r] > 0))
    if args.unseen_train_side is not None:
        return unseen_both_sides(args, labels, count, seen, unseen_a, unseen_n)
    want = args.n_per_a * sum(count[r] for r in unseen_a)
    drawn, total = [], 0
    for r in unseen_n[np.random.default_rng(args.seed).permutation(len(unseen_n))]:
        if total >= want:
            break
        drawn.append(str(r))
        total += count[r]
    test = set(unseen_a) | set(drawn)
    split = Split(k=2, seed=args.seed, by="record", group_fold={r: int(r not in test) for r in sorted(labels)},
                  label_counts={"test": [total, sum(count[r] for r in unseen_a)]})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    split.save(args.out)
    print(f"{args.out}: test {len(drawn)} N records ({total} windows) + {len(unseen_a)} A records "
          f"({sum(count[r] for r in unseen_a)} windows); {len(labels) - len(test)} records on the training side")


def unseen_both_sides(args: argparse.Namespace, labels: dict[str, str], count: dict[str, int], seen: set[str],
                      unseen_a: list[str], unseen_n: np.ndarray) -> None:
    """Fold 0 (test) and fold 1 (training side) both from records the shipped generator never saw."""
    rng = np.random.default_rng(args.seed)
    a = np.array(unseen_a)[rng.permutation(len(unseen_a))]
    test_a, train_a = set(a[: len(a) // 2]), set(a[len(a) // 2:])
    n = unseen_n[rng.permutation(len(unseen_n))]
    want, total, k = args.n_per_a * sum(count[r] for r in test_a), 0, 0
    while k < len(n) and total < want:
        total += count[n[k]]
        k += 1
    test_n, train_n = set(n[:k]), set(n[k:k + args.unseen_train_side])
    fold = {r: (0 if r in test_a | test_n else 1 if r in train_a | train_n else -1) for r in sorted(labels)}
    side = {f: {c: sum(count[r] for r in fold if fold[r] == f and labels[r] == c) for c in ("N", "A")} for f in (0, 1)}
    split = Split(k=2, seed=args.seed, by="record", group_fold=fold,
                  label_counts={"test": [side[0]["N"], side[0]["A"]], "train": [side[1]["N"], side[1]["A"]]})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    split.save(args.out)
    print(f"{args.out}: test side {len(test_n)} N + {len(test_a)} A records ({side[0]}); training side "
          f"{len(train_n)} N + {len(train_a)} A records ({side[1]}); excluded {sum(f < 0 for f in fold.values())} "
          f"records ({len(seen)} of them the shipped generator's training records)")


if __name__ == "__main__":
    main()
