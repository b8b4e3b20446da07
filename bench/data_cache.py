"""Data-layer bench: building the window cache from CinC 2017 and reading it through a DataLoader.

    python -m bench.data_cache --quick        # 150 records per class, ~1-2 min on a 2-core CPU
    python -m bench.data_cache                # every CinC 2017 record (N, A, O, ~), several minutes

1. Build: records/s and peak RSS of (a) the memmap cache built in one process, (b) the same with
   2 worker processes, against (c) the baseline of holding every window in one in-memory
   ECGBatch (``windows_from_source``). Each variant runs in a fresh subprocess so peak RSS is its
   own; the files are read once beforehand so no variant pays a cold page cache.
2. Read: windows/s through ``torch.utils.data.DataLoader`` (batch 64, shuffled) over the cache
   (memmap, 0 and 2 loader workers) against the same windows held in RAM (ArrayWindows).

Figures go to ``.notes/bench-data.md`` (``--out``). The machine is shared with other jobs, so
absolute figures are noisy; build variants therefore run round-robin (``--build-repeats``, median
reported) and the ratios within one run are the meaningful part.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("AUGFRAME_SHARED", ROOT.parent / "shared")) / "data" / "cinc2017"
CLASSES = ("N", "A", "O", "~")


def _source(data: Path, limit: int | None) -> Any:
    from augframe.data.cinc2017 import CinC2017Source

    return CinC2017Source(data, classes=CLASSES, limit_per_class=limit, seed=0)


def _peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def child_build(variant: str, data: Path, limit: int | None, cache_root: Path) -> dict[str, Any]:
    """One build variant in this (fresh) process (torch is not imported); returns its figures."""
    from augframe.data.batches import windows_from_source
    from augframe.data.cache import build_cache
    from augframe.data.preprocess import PreprocessConfig

    config = PreprocessConfig(leads="first")
    src = _source(data, limit)
    base_own, _ = _peak_rss_mb()
    t0 = time.perf_counter()
    if variant == "inmemory":
        batch, report = windows_from_source(src, config, CLASSES)
        n_windows, nbytes = len(batch), batch.signals.nbytes
    else:
        cache = build_cache(src, config, classes=CLASSES, root=cache_root, workers=2 if variant == "cache-2w" else 1,
                            rebuild=True)
        report, n_windows = cache.report, len(cache)
        nbytes = (cache.path / "signals.f32").stat().st_size
    dt = time.perf_counter() - t0
    own, kids = _peak_rss_mb()
    return {"variant": variant, "seconds": dt, "records": report.records_seen, "windows": n_windows,
            "records_per_s": report.records_seen / dt, "peak_rss_mb": own, "peak_rss_children_mb": kids,
            "rss_before_mb": base_own, "signal_mb": nbytes / 1e6}


def run_child(variant: str, data: Path, limit: int | None, cache_root: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.data_cache", "--child", variant, "--data", str(data),
           "--cache-root", str(cache_root)] + (["--limit", str(limit)] if limit else [])
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def warm_page_cache(data: Path, limit: int | None) -> None:
    src = _source(data, limit)
    rows, _ = src.plan()
    for r in rows:
        for ext in (".hea", ".mat"):
            (data / f"{r['id']}{ext}").read_bytes()


def read_bench(cache_root: Path, data: Path, limit: int | None, repeats: int, max_windows: int) -> list[dict[str, Any]]:
    import torch
    from torch.utils.data import DataLoader

    from augframe.data.cache import build_cache
    from augframe.data.preprocess import PreprocessConfig
    from augframe.windows import ArrayWindows

    torch.set_num_threads(1)
    cache = build_cache(_source(data, limit), PreprocessConfig(leads="first"), classes=CLASSES, root=cache_root)
    n = min(len(cache), max_windows)
    view = cache.view(np.arange(n))
    in_ram = ArrayWindows(cache.batch(np.arange(n)))
    results = []
    for name, ds, workers in (("in-RAM ArrayWindows (baseline)", in_ram, 0), ("memmap cache", view, 0),
                              ("memmap cache, 2 loader workers", view, 2)):
        times = []
        for rep in range(repeats):
            g = torch.Generator().manual_seed(rep)
            loader = DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers, generator=g)
            t0 = time.perf_counter()
            seen = sum(len(y) for _, y in loader)
            times.append(time.perf_counter() - t0)
            assert seen == n
        med = statistics.median(times)
        results.append({"variant": name, "windows": n, "median_s": med, "windows_per_s": n / med,
                        "repeats": times})
    return results


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median time, plus every repeat's records/s."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    out = dict(ordered[(len(ordered) - 1) // 2])
    out["all_records_per_s"] = [r["records_per_s"] for r in runs]
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["peak_rss_children_mb"] = max(r["peak_rss_children_mb"] for r in runs)
    return out


def write_markdown(path: Path, builds: list[dict[str, Any]], reads: list[dict[str, Any]],
                   args: argparse.Namespace) -> None:
    import torch

    base = next(b for b in builds if b["variant"] == "inmemory")
    lines = [
        "# Data layer bench (bench/data_cache.py)", "",
        f"- command: `python -m bench.data_cache{' --quick' if args.quick else ''}`",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, shared with other "
        "jobs (load was high while this ran); torch " + torch.__version__ + ", CPU only (no GPU in this task)",
        f"- data: CinC 2017 from shared/data, classes {list(CLASSES)}, "
        f"{'all records' if args.limit is None else f'{args.limit} records per class'}; 10 s windows, 250 Hz, "
        "reference cleaning, quality gate; page cache warmed first", "",
        f"## Cache build ({args.build_repeats} runs per variant, round-robin, each in a fresh process; "
        "the median run, i.e. the faster one of two)", "",
        "| variant | records | windows | median s | records/s | ratio vs in-memory | all runs rec/s | "
        "peak RSS MB (main) | growth during build MB | peak RSS MB (largest worker) | window data MB |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for b in builds:
        lines.append(f"| {b['variant']} | {b['records']} | {b['windows']} | {b['seconds']:.1f} | "
                     f"{b['records_per_s']:.1f} | {b['records_per_s'] / base['records_per_s']:.2f} | "
                     f"{', '.join(f'{v:.0f}' for v in b['all_records_per_s'])} | "
                     f"{b['peak_rss_mb']:.0f} | {b['peak_rss_mb'] - b['rss_before_mb']:.0f} | "
                     f"{b['peak_rss_children_mb']:.0f} | {b['signal_mb']:.0f} |")
    lines += ["", "## DataLoader read (batch 64, shuffled; median of repeats)", "",
              "| variant | windows | median s | windows/s | ratio vs in-RAM | repeats (s) |",
              "|---|---:|---:|---:|---:|---|"]
    ref = reads[0]["windows_per_s"]
    for r in reads:
        lines.append(f"| {r['variant']} | {r['windows']} | {r['median_s']:.2f} | {r['windows_per_s']:.0f} | "
                     f"{r['windows_per_s'] / ref:.2f} | {', '.join(f'{t:.2f}' for t in r['repeats'])} |")
    lines += ["", "Peak RSS of the in-memory baseline grows with the number of windows (every window is held, "
              "then concatenated: twice at the peak); the cache build holds one record's windows plus the "
              "small per-window index, whatever the dataset size.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="150 records per class, 2 read repeats")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=None, help="records per class (default: all)")
    ap.add_argument("--repeats", type=int, default=3, help="DataLoader read repeats")
    ap.add_argument("--build-repeats", type=int, default=2, help="builds per variant (round-robin)")
    ap.add_argument("--max-read-windows", type=int, default=20000)
    ap.add_argument("--out", type=Path, default=ROOT / ".notes" / "bench-data.md")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache-root", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child_build(args.child, args.data, args.limit, args.cache_root)))
        return
    if args.quick:
        args.limit = args.limit or 150
        args.repeats = min(args.repeats, 2)
        args.build_repeats = min(args.build_repeats, 2)
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found; pass --data or set AUGFRAME_SHARED")
    with tempfile.TemporaryDirectory(prefix="augframe-bench-") as tmp:
        root = Path(tmp)
        warm_page_cache(args.data, args.limit)
        runs: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.build_repeats):  # round-robin, so drifting machine load hits every variant alike
            for variant in ("inmemory", "cache-1w", "cache-2w"):
                runs.setdefault(variant, []).append(run_child(variant, args.data, args.limit, root / "c"))
                print(json.dumps(runs[variant][-1]), flush=True)
        builds = [_median_run(v) for v in runs.values()]
        reads = read_bench(root / "c", args.data, args.limit, args.repeats, args.max_read_windows)
        for r in reads:
            print(json.dumps(r), flush=True)
    write_markdown(args.out, builds, reads, args)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
