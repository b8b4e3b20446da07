"""How strong and how stable the afib plugin's classifier training is at CPU scale (CinC 2017, N vs A).

    python -m bench.classifier_stability accuracy  [--steps 600] [--epoch-steps 100] [--seeds 0 1 2] [--fold 0]
    python -m bench.classifier_stability stability [--steps 300] [--seeds 0 1 2 3 4] [--recipe robust]
                                                   [--balance sampler|loss|none]

Data: every N and A record of CinC 2017 through the data layer (lead I, 250 Hz, 10 s windows,
cleaning "none", no normalisation: the classifier z-scores each ECG itself), split by record.

* ``accuracy``: one fold of a 5-fold record-grouped split; the classifier trains on *all* training
  records of the fold (a grouped 15 % of them validates, at most ``--max-val`` windows), and is
  tested on the fold's held-out records: the AUROC condition A of the three-way protocol reaches.
* ``stability``: a small training pool of ``--a-records`` A + ``--n-records`` N records (a grouped
  20 % of them validates), tested on ``--test-per-class`` other records per class; the same data for
  every seed, only the training seed (initial weights, batch order, dropout) changes. Reports the
  SD of the held-out AUROC across seeds.

Training goes through ``augframe_afib.runs.train_and_test`` exactly as the evaluators call it.
``--recipe reference`` runs the reference's loop (focal loss, unbalanced batches, constant lr,
early stopping on the focal loss) with the same step budget, for comparison. Prints one JSON line
per run and a summary with CPU seconds (``time.process_time``; run it with ``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("AUGFRAME_SHARED", ROOT.parent / "shared")) / "data" / "cinc2017"


def load_windows(data: Path):
    """Every N and A window of CinC 2017 in mV (lead I, 250 Hz, 10 s, no cleaning)."""
    from augframe.data import cinc2017_windows

    return cinc2017_windows(data, classes=("N", "A"), fs=250.0, window_s=10.0, normalise=None, cleaning="none")


def records_of(batch) -> tuple[np.ndarray, np.ndarray]:
    """(unique record ids, the label of each) of a window batch."""
    rec = np.asarray(batch.meta["record"])
    uniq, first = np.unique(rec, return_index=True)
    return uniq, batch.labels[first]


def windows_of(batch, records: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(np.asarray(batch.meta["record"]), records))


def settings_for(args: argparse.Namespace):
    from augframe_afib.fit import TrainSettings

    if args.recipe == "reference":
        return TrainSettings.reference(max_epochs=None, max_steps=args.steps, batch_size=args.batch,
                                       patience=args.patience)
    return TrainSettings(max_steps=args.steps, batch_size=args.batch, lr=args.lr, patience=args.patience,
                         balance=args.balance, monitor=args.monitor,
                         max_steps_per_epoch=args.epoch_steps)


def run_one(batch, tr: np.ndarray, va: np.ndarray, te: np.ndarray, seed: int, args: argparse.Namespace) -> dict:
    from augframe.plugins import Registry
    from augframe_afib.metrics import classification_metrics
    from augframe_afib.runs import build_classifier, train_and_test

    x, y = batch.numpy(), batch.labels
    params = {"width": args.width, "depth": [1, 1, 1, 1], "attention_dropout": 0.0}
    model = build_classifier(Registry.discover(), args.classifier, params if args.classifier == "afib-reslstm" else {},
                             class_names=batch.class_names, n_leads=1, fs=batch.fs, seed=seed)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    rec, arrays = train_and_test(model, (x[tr], y[tr]), (x[va], y[va]), {"test": x[te]}, settings_for(args),
                                 seed=seed, device="cpu", desc=f"seed {seed}")
    m = classification_metrics(y[te], arrays["proba_test"], 1)
    out = {"seed": seed, "auroc": m["auroc"], "accuracy": m["accuracy"], "f1": m["f1"], "recall": m["recall"],
           "specificity": m["specificity"], "best_epoch": rec["best_epoch"], "epochs_run": rec["epochs_run"],
           "steps": rec.get("steps"), "best_val_auroc": rec["best_val_auroc"],
           "cpu_s": round(time.process_time() - cpu0, 1), "wall_s": round(time.perf_counter() - wall0, 1),
           "n_train": int(len(tr)), "n_val": int(len(va)), "n_test": int(len(te))}
    if args.history:
        out["history"] = [{k: round(v, 4) for k, v in h.items()} for h in rec["history"]]
    print(json.dumps(out), flush=True)
    return out


def split_accuracy(batch, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import StratifiedGroupKFold

    from augframe_afib.splits import holdout

    groups = np.asarray(batch.meta["record"])
    folds = StratifiedGroupKFold(5, shuffle=True, random_state=0).split(np.zeros(len(batch)), batch.labels, groups)
    trval, te = list(folds)[args.fold]
    tr_i, va_i = holdout(batch.labels[trval], 0.15, 1, groups[trval], "training part")
    tr, va = trval[tr_i], trval[va_i]
    if len(va) > args.max_val:
        va = np.sort(np.random.default_rng(2).choice(va, args.max_val, replace=False))
    return tr, va, te


def split_stability(batch, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from augframe_afib.splits import holdout

    recs, labels = records_of(batch)
    rng = np.random.default_rng(0)
    a, n = rng.permutation(recs[labels == 1]), rng.permutation(recs[labels == 0])
    pool = np.concatenate([a[:args.a_records], n[:args.n_records]])
    test = np.concatenate([a[args.a_records:args.a_records + args.test_per_class],
                           n[args.n_records:args.n_records + args.test_per_class]])
    trval, te = windows_of(batch, pool), windows_of(batch, test)
    groups = np.asarray(batch.meta["record"])
    tr_i, va_i = holdout(batch.labels[trval], 0.2, 1, groups[trval], "training pool")
    return trval[tr_i], trval[va_i], te


def summarise(runs: list[dict], what: str, load_cpu_s: float) -> dict:
    au = np.array([r["auroc"] for r in runs])
    cpu = sum(r["cpu_s"] for r in runs)
    return {"what": what, "runs": len(runs), "auroc_mean": round(float(au.mean()), 4),
            "auroc_sd": round(float(au.std(ddof=1)), 4) if len(au) > 1 else None,
            "auroc_min": round(float(au.min()), 4), "auroc_max": round(float(au.max()), 4),
            "cpu_minutes_training": round(cpu / 60, 1), "cpu_minutes_per_run": round(cpu / 60 / len(runs), 1),
            "cpu_minutes_loading": round(load_cpu_s / 60, 1)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("accuracy", "stability"))
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--classifier", default="afib-reslstm")
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (accuracy 600, stability 300)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--epoch-steps", type=int, default=None,
                   help="steps between validation checks (accuracy 100, stability one pass)")
    p.add_argument("--balance", default="sampler", choices=("sampler", "loss", "none"))
    p.add_argument("--monitor", default="auroc", choices=("auroc", "balanced_loss", "loss"))
    p.add_argument("--recipe", default="robust", choices=("robust", "reference"))
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="accuracy: 0 1 2; stability: 0 1 2 3 4")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--max-val", type=int, default=600)
    p.add_argument("--a-records", type=int, default=30)
    p.add_argument("--n-records", type=int, default=200)
    p.add_argument("--test-per-class", type=int, default=200)
    p.add_argument("--history", action="store_true", help="print each run's validation history")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    accuracy = args.what == "accuracy"
    args.steps = args.steps or (600 if accuracy else 300)
    args.epoch_steps = args.epoch_steps or (100 if accuracy else None)
    seeds = args.seeds or ([0, 1, 2] if accuracy else [0, 1, 2, 3, 4])
    cpu0 = time.process_time()
    batch = load_windows(args.data)
    load_cpu = time.process_time() - cpu0
    tr, va, te = (split_accuracy if args.what == "accuracy" else split_stability)(batch, args)
    print(json.dumps({"train_windows": len(tr), "val_windows": len(va), "test_windows": len(te),
                      "train_A": int(batch.labels[tr].sum()), "test_A": int(batch.labels[te].sum()),
                      "settings": {k: v for k, v in vars(args).items() if k != "data"}}, default=str), flush=True)
    runs = [run_one(batch, tr, va, te, s, args) for s in seeds]
    print(json.dumps(summarise(runs, args.what, load_cpu)), flush=True)


if __name__ == "__main__":
    main()
