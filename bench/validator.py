"""Plausibility validator benchmarks: throughput, real-data acceptance table, detector agreement.

    python -m bench.validator throughput [--quick]   # ECG/s: reference-style loop vs batched, same run
    python -m bench.validator acceptance [--quick]   # CinC 2017 N/A accepted, implausible kinds rejected
    python -m bench.validator detector [--quick]     # R-apex detector vs wfdb XQRS, F1 within 50 ms

Throughput uses the reference fixture's 20 (source, candidate) pairs (ECGSYN signals, the same kind
of input the reference timing used), tiled to the workload size; after a warm-up the cases are timed
round-robin ``--repeats`` times (so load changes on a shared machine hit every case alike) and the
median per case is reported. The stored reference figure (192 ECG/s, mean of
its two runs of 196 and 188) is in ``shared/reference/timings.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUGFRAME_SHARED", ROOT.parent / "shared"))
REFERENCE_ECG_PER_S = 192.0


def _setup() -> None:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "plugins"))


def _batch(x, labels, fs=250.0):
    from augframe.signals import ECGBatch

    return ECGBatch(np.asarray(x, np.float32)[:, None, :], fs, ("I",), labels=labels, class_names=("N", "A"))


# --- throughput ------------------------------------------------------------------------------------
def throughput(args) -> dict:
    import torch

    from augframe_plausibility.validator import PlausibilityFilter
    from bench.reference_validator import check_parity, validate_one

    fx = torch.load(SHARED / "reference" / "plausibility_validator.pt", weights_only=True)
    check_parity(SHARED / "reference" / "plausibility_validator.json", fx["candidates"].numpy(),
                 fx["sources"].numpy(), fx["target_class"].numpy())
    n = 200 if args.quick else args.n
    reps = int(np.ceil(n / 20))
    cand = np.tile(fx["candidates"].numpy(), (reps, 1))[:n]
    src = np.tile(fx["sources"].numpy(), (reps, 1))[:n]
    tgt = np.tile(fx["target_class"].numpy(), reps)[:n]
    orig = np.tile(fx["original_class"].numpy(), reps)[:n]
    cb, sb = _batch(cand, tgt), _batch(src, orig)
    n_loop = min(n, 200 if args.quick else 500)

    def loop():
        for i in range(n_loop):
            validate_one(cand[i], src[i], int(tgt[i]))

    cases = [("reference-style loop (faithful, per sample)", loop, n_loop)]
    for mode in ("faithful", "improved"):
        for workers in (1, 2):
            f = PlausibilityFilter(mode=mode, workers=workers, chunk_size=max(1, int(np.ceil(n / workers))))
            cases.append((f"{mode} batched, {workers} thread{'s' if workers > 1 else ''}",
                          lambda f=f: f.score(cb, sb), n))
    # Interleaved: every repeat times each case once, so a load change on the shared machine hits all
    # cases alike instead of biasing whichever case ran during it.
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for name, fn, _ in cases:
        fn()
    for _ in range(args.repeats):
        for name, fn, _ in cases:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    rows = {name: k / statistics.median(times[name]) for name, _, k in cases}
    base = rows["reference-style loop (faithful, per sample)"]
    out = {"n_pairs": n, "n_loop": n_loop, "repeats": args.repeats, "ecg_per_s": rows,
           "ratio_vs_loop": {k: v / base for k, v in rows.items()},
           "ratio_vs_stored_reference": {k: v / REFERENCE_ECG_PER_S for k, v in rows.items()}}
    print(f"{'case':48s} {'ECG/s':>9s} {'x loop':>7s} {'x stored ref':>12s}")
    for k, v in rows.items():
        print(f"{k:48s} {v:9.0f} {v / base:7.1f} {v / REFERENCE_ECG_PER_S:12.1f}")
    return out


# --- acceptance ------------------------------------------------------------------------------------
def acceptance(args) -> dict:
    from augframe_plausibility.realdata import KINDS, cinc_windows, implausible
    from augframe_plausibility.validator import PlausibilityFilter

    t0 = time.perf_counter()
    ids = None
    if args.cache and Path(args.cache).exists():
        z = np.load(args.cache)
        batch = _batch(z["x"], z["y"])
        ids = z["ids"] if "ids" in z.files else None
    else:
        batch = cinc_windows(SHARED / "data" / "cinc2017", limit_per_class=60 if args.quick else None,
                             normalise=None)
        ids = np.array(batch.ids)
        if args.cache:  # save for the next run (temp file, then rename)
            tmp = Path(args.cache).with_suffix(".tmp.npz")
            np.savez(tmp, x=batch.numpy()[:, 0, :], y=batch.labels, ids=ids)
            tmp.replace(args.cache)
    load_s = time.perf_counter() - t0
    x = batch.numpy()[:, 0, :].astype(np.float64)
    y = batch.labels
    # held-out check of the calibrated thresholds: records with even / odd numbers (calibration used even)
    halves = {"all": np.ones(len(y), bool)}
    if ids is not None:
        num = np.array([int("".join(ch for ch in str(i).split(":")[0] if ch.isdigit()) or -1) for i in ids])
        halves["even records"] = num % 2 == 0
        halves["odd records"] = num % 2 == 1
    f = PlausibilityFilter(units="mV", workers=args.workers)
    rows = []

    def add(name, what, mask, ok):
        rates = [float(ok[mask & h].mean()) if (mask & h).any() else float("nan") for h in halves.values()]
        rows.append((name, int(mask.sum()), what, rates))

    res = f.score(batch)
    for c, name in enumerate(batch.class_names):
        add(f"real {name}", "accepted", y == c, res.accept)
    from augframe_plausibility.improved import CHECKS

    gates = [k for k in CHECKS if CHECKS[k][1] and k in res.checks]
    fail_counts = {k: {name: int(((res.checks[k] < 1) & (y == c)).sum()) for c, name in enumerate(batch.class_names)}
                   for k in ["input_valid"] + gates}
    rng = np.random.default_rng(args.seed)
    every = np.ones(len(y), bool)
    for kind in KINDS:
        bad = implausible(kind, x, batch.fs, rng)
        r = f.score(_batch(bad, y))
        add(kind, "rejected", every, ~r.accept)
    swapped = f.score(_batch(x, 1 - y))
    for c, name in enumerate(batch.class_names):
        other = batch.class_names[1 - c]
        add(f"real {name} labelled {other}", "rejected", y == c, ~swapped.accept)
    print(f"\nwindows: {len(batch)} ({', '.join(f'{n}: {(y == c).sum()}' for c, n in enumerate(batch.class_names))}); "
          f"loaded in {load_s:.0f} s\n")
    print("| input | windows | measured | " + " | ".join(halves) + " |\n|---|---:|---|" + "---:|" * len(halves))
    for name, n, what, rates in rows:
        print(f"| {name} | {n} | {what} | " + " | ".join(f"{100 * r:.1f} %" for r in rates) + " |")
    print("\nreal windows failing each gate (a window can fail several):", json.dumps(fail_counts))
    return {"rows": rows, "columns": list(halves), "fail_counts": fail_counts, "n_windows": len(batch)}


# --- detector ----------------------------------------------------------------------------------------
def detector(args) -> dict:
    from augframe_plausibility.agreement import f1, match_counts, xqrs_reference
    from augframe_plausibility.apex import detect
    from augframe_plausibility.realdata import load_cinc_windows

    batch = load_cinc_windows(SHARED / "data" / "cinc2017", max_records=40 if args.quick else None)
    rng = np.random.default_rng(args.seed)
    out = {}
    for c, name in enumerate(batch.class_names):
        idx = np.flatnonzero(batch.labels == c)
        idx = np.sort(rng.choice(idx, min(len(idx), 40 if args.quick else args.windows), replace=False))
        x = batch.numpy()[idx, 0, :].astype(np.float64)
        t = time.perf_counter()
        peaks, _, _ = detect(x, batch.fs)
        t_mine = time.perf_counter() - t
        t = time.perf_counter()
        refs = [xqrs_reference(x[i], batch.fs) for i in range(len(x))]
        t_ref = time.perf_counter() - t
        counts = np.array([match_counts(refs[i], peaks.row(i), x.shape[1], batch.fs) for i in range(len(x))])
        counts150 = np.array([match_counts(refs[i], peaks.row(i), x.shape[1], batch.fs, tol_s=0.15) for i in range(len(x))])
        out[name] = {"windows": len(idx), "beats_xqrs": int(counts[:, 0].sum() + counts[:, 2].sum()),
                     "f1_50ms": f1(counts), "f1_150ms": f1(counts150),
                     "tp_fp_fn": counts.sum(0).tolist(), "ours_ecg_per_s": len(x) / t_mine,
                     "xqrs_ecg_per_s": len(x) / t_ref}
        print(f"{name}: {len(idx)} windows, F1@50ms {out[name]['f1_50ms']:.4f}, F1@150ms {out[name]['f1_150ms']:.4f}, "
              f"tp/fp/fn {out[name]['tp_fp_fn']}, ours {out[name]['ours_ecg_per_s']:.0f} ECG/s, "
              f"xqrs {out[name]['xqrs_ecg_per_s']:.1f} ECG/s")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.validator", description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("throughput", "acceptance", "detector"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--n", type=int, default=2000, help="throughput: pairs per timed call")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--windows", type=int, default=500, help="detector: windows per class")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=None, help="acceptance: npz of the loaded windows (x [N, L] mV, y); read if present, else written")
    p.add_argument("--json", default=None, help="write the figures here as JSON")
    args = p.parse_args(argv)
    _setup()
    import torch

    print(f"# bench.validator {args.what}: python {platform.python_version()}, torch {torch.__version__}, "
          f"numpy {np.__version__}, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}")
    out = {"throughput": throughput, "acceptance": acceptance, "detector": detector}[args.what](args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
