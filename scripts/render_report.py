#!/usr/bin/env python
"""Render an augframe report to PNG with headless Chromium, or build an example report first.

    python scripts/render_report.py RUN_DIR_OR_REPORT_HTML [--png OUT.png] [--width 1280] [--height 2400]
    python scripts/render_report.py --example OUT_DIR [--cinc ../shared/data/cinc2017] [--full]

``--example`` evaluates a *stand-in* synthetic set (Savitzky-Golay-smoothed copies of real CinC 2017
windows plus N(0, 0.02 mV) noise, linked to their sources) with the fidelity and TSTR evaluators (and
the three-way protocol with ``--full``) at a tiny classifier width, writes the report and
screenshots it. It shows the page, not a generator's quality.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path


def _example(out: Path, cinc: Path, full: bool) -> Path:
    import numpy as np
    import torch
    from scipy.signal import savgol_filter

    from augframe.data import cinc2017_windows
    from augframe.plugins import Registry
    from augframe.protocols import EvalContext
    from augframe.report import write_report
    from augframe.signals import ECGBatch

    torch.set_num_threads(1)
    seed = 0
    real = cinc2017_windows(cinc, limit_per_class=40, seed=seed, normalise=None)
    rng = np.random.default_rng(seed)
    src = real.select(np.sort(rng.choice(len(real), 60, replace=False)))
    x = savgol_filter(src.numpy(), 11, 3, axis=-1) + rng.normal(0, 0.02, src.numpy().shape)
    syn = ECGBatch(x.astype(np.float32), real.fs, real.leads, labels=src.labels, class_names=real.class_names,
                   ids=[f"syn{i}" for i in range(len(src))], meta={"source_id": np.asarray(src.ids)})
    reg = Registry.discover()
    ctx = EvalContext(seed=seed, workdir=out / "work")
    small = {"width": 0.125, "depth": [1, 1, 1, 1]}
    results = [
        reg.create("evaluator", "fidelity", {"judge_params": small, "judge_epochs": 3}).evaluate(
            real, syn, sources=src, context=ctx),
        reg.create("evaluator", "tstr", {"classifier_params": small, "max_epochs": 3}).evaluate(real, syn, context=ctx),
    ]
    if full:
        results.append(reg.create("evaluator", "three-way", {
            "folds": 3, "classifier_params": small, "max_epochs": 3, "include_d": True}).evaluate(real, syn, context=ctx))
    return write_report(
        results, out, pairs=(src, syn), title="Synthetic ECG evaluation: example run",
        subtitle="CinC 2017 windows (N / AF) vs a stand-in synthetic set (smoothed + noise copies); tiny classifiers",
        meta={"seed": seed, "real": f"CinC 2017, {len(real)} windows of {real.n_samples / real.fs:g} s at {real.fs:g} Hz",
              "synthetic": "stand-in: savgol(11, 3) + N(0, 0.02 mV) of 60 real windows", "classifier": str(small)},
        class_text={"N": "normal sinus rhythm", "A": "atrial fibrillation"},
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", nargs="?", help="a run folder with report.html, or the HTML file")
    ap.add_argument("--png", help="output PNG (default: report.png beside the HTML)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    ap.add_argument("--example", metavar="OUT_DIR", help="build an example report in OUT_DIR first")
    ap.add_argument("--cinc", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cinc2017"))
    ap.add_argument("--full", action="store_true", help="with --example: also run the three-way protocol (slow)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from augframe.report import screenshot

    if args.example:
        html = _example(Path(args.example), Path(args.cinc), args.full)
    elif args.target:
        html = Path(args.target)
        html = html / "report.html" if html.is_dir() else html
    else:
        ap.error("give a report (folder or HTML) or --example OUT_DIR")
    png = Path(args.png) if args.png else html.with_suffix(".png")
    screenshot(html, png, width=args.width, height=args.height)
    print(f"{html}\n{png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
