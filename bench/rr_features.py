"""Held-out CinC 2017 accuracy and cost of the ``rr-features`` classifier (RR irregularity + LR).

    python -m bench.rr_features [--records-per-class 738] [--detector xqrs] [--seed 0]

CinC 2017 N and A records (at most ``--records-per-class`` each, seeded draw; 738 = every A
record) are cut into 10 s windows at 250 Hz in mV (lead "I", no cleaning: the detector filters).
Records, not windows, are split 60/20/20 into train / validation / test (stratified), so no test
record has a window in training. The classifier is built through the registry, fitted with
``model.fit`` (C chosen on validation) and scored on the test windows: AUROC, and sensitivity /
specificity of its argmax (class-balanced weights, so about the Youden point). Also printed: RR CV
alone (AUROC of the raw feature), detection ms per 10 s window (measured on the windows actually
run), and the time of a second prediction on the same windows (cache hits only).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("AUGFRAME_SHARED", ROOT.parent / "shared")) / "data" / "cinc2017"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--records-per-class", type=int, default=738)
    ap.add_argument("--detector", default="xqrs", choices=("xqrs", "bandpass"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    from sklearn.metrics import roc_auc_score

    from augframe.data import cinc2017_windows
    from augframe.plugins import Registry
    from augframe_afib.detectors import CACHE
    from augframe_afib.fit import predict_proba
    from augframe_afib.metrics import classification_metrics
    from augframe_afib.rhythm import rhythm_features
    from augframe_afib.splits import holdout

    t0 = time.perf_counter()
    batch = cinc2017_windows(args.data, limit_per_class=args.records_per_class, seed=args.seed, normalise=None,
                             cleaning="none")
    load_s = time.perf_counter() - t0
    x, y, rec = batch.numpy(), batch.labels, np.asarray(batch.meta["record"])
    trval, test = holdout(y, 0.2, args.seed, rec, "CinC")
    tr, va = holdout(y[trval], 0.25, args.seed + 1, rec[trval], "CinC training")
    tr, va = trval[tr], trval[va]

    model = Registry.discover().create("classifier", "rr-features",
                                       {"fs": batch.fs, "detector": args.detector, "seed": args.seed})
    fit = model.fit(x[tr], y[tr], x[va], y[va], seed=args.seed)
    t1 = time.perf_counter()
    proba = predict_proba(model, x[test])
    predict_s = time.perf_counter() - t1
    detect_ms = CACHE.ms_per_window(args.detector)
    t1 = time.perf_counter()
    again = predict_proba(model, x[test])
    cached_s = time.perf_counter() - t1
    m = classification_metrics(y[test], proba, positive=1)
    cv = rhythm_features(x[test], batch.fs, args.detector)["rr_cv"]
    cv_auroc = roc_auc_score(y[test], np.nan_to_num(cv, nan=0.0))

    def count(idx: np.ndarray) -> str:
        return (f"{len(np.unique(rec[idx]))} records ({len(np.unique(rec[idx][y[idx] == 1]))} A), {len(idx)} windows "
                f"({int(np.sum(y[idx] == 1))} A)")

    print(f"CinC 2017 at {args.data}: N and A, at most {args.records_per_class} records per class, seed {args.seed}; "
          f"10 s windows at {batch.fs:g} Hz, loaded in {load_s:.1f} s")
    for name, idx in (("train", tr), ("validation", va), ("test", test)):
        print(f"  {name:10s} {count(idx)}")
    print(f"detector {args.detector}: {detect_ms:.1f} ms per 10 s window ({CACHE.windows[args.detector]} windows run)")
    print(f"fit: C = {fit['C']} ({fit['C_chosen_by']}; validation AUROC by C {fit['C_grid_val_auroc']}), "
          f"{fit['seconds']:.1f} s of which detection {fit['detect_seconds']:.1f} s")
    print(f"test: AUROC {m['auroc']:.4f}, sensitivity {m['recall']:.3f}, specificity {m['specificity']:.3f}, "
          f"accuracy {m['accuracy']:.3f}; RR CV alone AUROC {cv_auroc:.4f}")
    print(f"prediction on {len(test)} test windows: {predict_s:.2f} s first (detects), {cached_s:.3f} s again "
          f"(cached); identical: {bool(np.array_equal(proba, again))}")
    print(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "fit": fit, "test": m,
                      "rr_cv_auroc": cv_auroc, "detect_ms_per_window": detect_ms,
                      "n": {"train": len(tr), "val": len(va), "test": len(test)}}))


if __name__ == "__main__":
    main()
