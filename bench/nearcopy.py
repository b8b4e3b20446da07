"""Near-copy filter benchmark: candidates x training windows, pruned exact search vs brute force.

    python -m bench.nearcopy [--quick] [--candidates 10000] [--train 100000] [--measure 200]

Training windows are CinC 2017 10 s windows (250 Hz, mV, plain read); to reach ``--train`` rows the
set is repeated with a random circular shift and 0.02 mV noise per copy (so the set is not 5 copies
of one array, but it is also not 100,000 independent patients: say so when quoting). Candidates are
other real windows plus noise. On a CPU the full 10^4 x 10^5 search is long: the script times
``--measure`` candidates against the full training set and extrapolates linearly in the number of
candidates (the work is a sum over candidate chunks), printing both the measured and the
extrapolated figure. The in-run baseline is the unpruned all-pairs FFT correlation on a sub-grid.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUGFRAME_SHARED", ROOT.parent / "shared"))


def _brute_pairs_per_s(f, cand, train, n_c: int, n_t: int) -> float:
    """All-pairs FFT NCC without the bound (the work the pruning avoids), pairs per second."""
    import torch

    c = torch.from_numpy(cand[:n_c]).to(f.device)
    t = torch.from_numpy(train[:n_t]).to(f.device)
    start = time.perf_counter()
    with torch.inference_mode():
        cz, _ = f._normalise(c)
        tz, _ = f._normalise(t)
        cs = torch.fft.rfft(cz, n=f.n_fft)
        ts = torch.fft.rfft(tz, n=f.n_fft)
        for i in range(n_c):
            torch.fft.irfft(cs[i:i + 1].conj() * ts, n=f.n_fft).max(dim=1)
    if f.device.type == "cuda":
        torch.cuda.synchronize()
    return n_c * n_t / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.nearcopy")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--candidates", type=int, default=10_000)
    p.add_argument("--train", type=int, default=100_000)
    p.add_argument("--measure", type=int, default=200, help="candidates actually timed on CPU")
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    sys.path.insert(0, str(ROOT / "plugins"))
    from augframe.signals import ECGBatch
    from augframe_plausibility.nearcopy import NearCopyFilter
    from augframe_plausibility.realdata import load_cinc_windows

    if args.quick:
        args.candidates, args.train, args.measure = 200, 5000, 50
    rng = np.random.default_rng(args.seed)
    real = load_cinc_windows(SHARED / "data" / "cinc2017").numpy()[:, 0, :]
    n_real = len(real)
    hold = rng.permutation(n_real)
    cand_pool, train_pool = real[hold[:2000]], real[hold[2000:]]
    reps = int(np.ceil(args.train / len(train_pool)))
    parts = [train_pool]
    for _ in range(reps - 1):
        shift = rng.integers(0, train_pool.shape[1], size=len(train_pool))
        idx = (np.arange(train_pool.shape[1])[None, :] + shift[:, None]) % train_pool.shape[1]
        parts.append(np.take_along_axis(train_pool, idx, axis=1)
                     + rng.normal(0, 0.02, train_pool.shape).astype(np.float32))
    train = np.concatenate(parts)[: args.train].astype(np.float32)
    del parts
    n_meas = min(args.measure, args.candidates)
    cand = (cand_pool[rng.integers(0, len(cand_pool), n_meas)]
            + rng.normal(0, 0.02, (n_meas, real.shape[1]))).astype(np.float32)
    # plant copies: every 10th measured candidate is a shifted training window
    plant = np.arange(0, n_meas, 10)
    src = rng.integers(0, len(train), len(plant))
    cand[plant] = np.roll(train[src], 25, axis=1)
    tb = ECGBatch(train[:, None, :], 250.0, ("I",))
    t = time.perf_counter()
    f = NearCopyFilter(tb, threshold=args.threshold, device=args.device)
    t_init = time.perf_counter() - t
    t = time.perf_counter()
    f._train_features()
    t_feat = time.perf_counter() - t
    t = time.perf_counter()
    rep = f.evaluate(ECGBatch(cand[:, None, :], 250.0, ("I",)))
    t_search = time.perf_counter() - t
    caught = float((~rep.result.accept[plant]).mean())
    others = np.setdiff1d(np.arange(n_meas), plant)
    brute = _brute_pairs_per_s(f, cand, train, min(8, n_meas), min(2000, len(train)))
    pairs = n_meas * len(train)
    pruned_rate = pairs / t_search
    extrap = t_feat + t_search * args.candidates / n_meas
    out = {
        "device": str(f.device), "torch": torch.__version__, "python": platform.python_version(),
        "train_windows": len(train), "measured_candidates": n_meas, "target_candidates": args.candidates,
        "init_s": t_init, "train_features_s": t_feat, "search_s": t_search,
        "pairs_per_s_pruned": pruned_rate, "pairs_per_s_bruteforce": brute, "speedup_vs_bruteforce": pruned_rate / brute,
        "exact_pairs": rep.pairs_checked_exactly, "exact_fraction": rep.pairs_checked_exactly / pairs,
        "planted_copies_caught": caught, "planted_min_ncc": float(rep.value[plant].min()), "other_candidates_rejected": float((~rep.result.accept[others]).mean()),
        "extrapolated_total_s": extrap, "extrapolated": n_meas < args.candidates,
    }
    print(f"# bench.nearcopy on {f.device}, torch {torch.__version__}, load avg {os.getloadavg()[0]:.1f} (shared machine)")
    for k, v in out.items():
        print(f"{k:28s} {v:.4g}" if isinstance(v, float) else f"{k:28s} {v}")
    if n_meas < args.candidates:
        print(f"EXTRAPOLATED: {args.candidates} x {len(train)} would take ~{extrap:.0f} s here "
              f"(measured {n_meas} candidates in {t_search:.1f} s + {t_feat:.1f} s training features)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
