"""How often did re-timing need more beats than the source had (and so wrap to its first beat)?

    python scripts/retime_wraps.py runs/afib-rhythm-cpu-paired
    python scripts/retime_wraps.py runs/afib-rhythm-cpu-paired --tstr out/tstr-no-wrap   # then TSTR without them

Re-timing visits a source's beat intervals in order and wraps to the first when the target rhythm has
more beats (augframe/retime.py). For every ECG in the run's bank this counts beats with wfdb XQRS (the
independent detector) in the synthetic ECG and in its source, and prints per direction the share of
synthetic ECGs with more beats than their source (a wrap) and the median beat counts. A mark that only
one synthetic class carries is a cue a classifier trained on synthetic ECGs alone can learn.

``--tstr DIR`` then runs the run's own ``tstr`` evaluator (its recipe's parameters and seed) on the run's real
test ECGs and the synthetic ECGs WITHOUT a wrap, and prints its AUROC rows: if a classifier learned the
wrap, its TSTR rises toward TRTR-matched.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a finished run folder")
    p.add_argument("--tstr", type=Path, help="work folder: run TSTR on the synthetic ECGs without a wrap")
    args = p.parse_args()
    from augframe import load_run_data
    from augframe.bank import Bank
    from augframe.windows import as_windows, gather
    from augframe_afib.detectors import detect

    data = load_run_data(args.run)
    train = as_windows(data.train)
    bank = Bank.open(args.run / "bank")
    idx = np.arange(len(bank))
    pos = {k: j for j, k in enumerate(train.ids)}
    sources = gather(train, [pos[r["source_id"]] for r in bank.rows(idx)])
    synthetic = bank.batch(idx)
    n_syn = np.array([len(b) for b in detect(synthetic.numpy(), synthetic.fs)])
    n_src = np.array([len(b) for b in detect(sources.numpy(), sources.fs)])
    tags = np.array([k.split(":", 1)[0] for k in bank.keys])
    print("direction  n    more beats than source  median beats synthetic / source")
    for tag in sorted(set(tags)):
        m = tags == tag
        print(f"{tag:9s} {int(m.sum()):4d}  {np.mean(n_syn[m] > n_src[m]):20.1%}  "
              f"{np.median(n_syn[m]):.1f} / {np.median(n_src[m]):.1f}")
    if args.tstr is not None:
        keep = np.flatnonzero(n_syn <= n_src)
        print(f"TSTR on the {len(keep)} synthetic ECGs without a wrap "
              f"({', '.join(f'{t} {int(np.sum(tags[keep] == t))}' for t in sorted(set(tags)))})")
        _tstr(args.run, as_windows(data.test), synthetic.select(keep), sources.select(keep), args.tstr)


def _tstr(run: Path, test, synthetic, sources, workdir: Path) -> None:
    """The run's own ``tstr`` evaluator (its recipe's parameters and seed) on the given synthetic ECGs."""
    from augframe.plugins import Registry
    from augframe.protocols import EvalContext
    from augframe.recipe import load
    from augframe.windows import gather

    recipe = load(run / "recipe.toml")
    spec = next((e for e in recipe.evaluators if e.name == "tstr"), None)
    if spec is None:
        raise SystemExit(f"{run / 'recipe.toml'} has no tstr evaluator")
    ev = Registry.discover().create("evaluator", "tstr", dict(spec.params))
    res = ev.evaluate(gather(test, np.arange(len(test))), synthetic, sources=sources,
                      context=EvalContext(seed=recipe.run.seed, workdir=workdir))
    for row in res.tables["tstr"].rows:
        print(f"{row[0]:13s} {row[1]:13s} train {row[4]:5d}  AUROC {row[9]:.3f}  F1 {row[6]:.3f}")

if __name__ == "__main__":
    main()
