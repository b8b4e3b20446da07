"""Cost per synthetic item of the two [mix] modes: live generation vs reading the bank.

    python -m bench.mix_cost [--batches 3] [--epochs 200] [--threads 1] [--json OUT]

* **live**: ``recipes/quickstart.toml`` with ``[mix] mode = "live"`` and ``run.device = "cpu"``
  (the shipped width-16 DiffStyleTS, plausibility and near-copy filters), through
  ``augframe.training_data`` over a DataLoader of the run's training windows (batch 32, share 0.33):
  candidates made, items replaced and training items served per second of wall time, over
  ``--batches`` batches (the first includes the model's first call).
* **bank**: an ``AugmentedDataset`` at the same share over a 2,000-ECG bank of the same shape
  (1 lead x 2,500 samples, seeded noise) and 300 base windows, through a DataLoader without workers
  (batch 32, shuffled), over ``--epochs`` epochs: synthetic and training items per second.

Both run in this process with ``--threads`` torch threads; the figures depend on the machine and on
what else runs on it, so compare the two forms measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

import augframe
from augframe.bank import Bank
from augframe.dataset import AugmentedDataset
from augframe.seeding import numpy_rng
from augframe.windows import ArrayWindows

REPO = Path(__file__).resolve().parents[1]
SHARE, BATCH = 0.33, 32


def live(folder: Path, batches: int) -> dict[str, float]:
    text = (REPO / "recipes" / "quickstart.toml").read_text(encoding="utf-8")
    text = text.replace("synthetic_share = 0.33", 'synthetic_share = 0.33\nmode = "live"')
    text = text.replace('device = "auto"', 'device = "cpu"')
    text = text.replace('output_dir = "runs/{name}"', f'output_dir = "{(folder / "run").as_posix()}"')
    recipe = folder / "live.toml"
    recipe.write_text(text, encoding="utf-8")
    train, _ = augframe.load_run_data(recipe)
    loader = augframe.training_data(recipe, DataLoader(train, batch_size=BATCH, shuffle=False))
    items, t = 0, time.perf_counter()
    for i, out in enumerate(loader):
        items += len(out.y)
        if i + 1 == batches:
            break
    dt = time.perf_counter() - t
    s = loader.augmenter.stats
    return {"seconds": dt, "batches": s["batches"], "candidates_per_s": s["candidates"] / dt,
            "accepted": s["accepted"], "candidates": s["candidates"],
            "synthetic_items_per_s": s["replaced"] / dt, "training_items_per_s": items / dt}


def bank(folder: Path, epochs: int) -> dict[str, float]:
    rng = numpy_rng(0, 0xB4)
    names, shape = ("N", "A"), (1, 2500)
    with Bank.create(folder / "bank", fs=250.0, leads=("I",), samples_per_window=shape[1], class_names=names) as b:
        x = rng.standard_normal((2000, *shape)).astype(np.float32)
        b.append(augframe.ECGBatch(x, 250.0, ("I",), labels=np.arange(2000) % 2, class_names=names),
                 [{"key": f"k{i}"} for i in range(2000)])
    base = ArrayWindows(augframe.ECGBatch(rng.standard_normal((300, *shape)).astype(np.float32), 250.0, ("I",),
                                          labels=np.arange(300) % 2, class_names=names))
    ds = AugmentedDataset(base, folder / "bank", SHARE, seed=0)
    items = synthetic = 0
    t = time.perf_counter()
    for e in range(epochs):
        ds.set_epoch(e)
        for _, y, flags in DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=0,
                                      generator=torch.Generator().manual_seed(e)):
            items += len(y)
            synthetic += int(flags.sum())
    dt = time.perf_counter() - t
    return {"seconds": dt, "epochs": epochs, "synthetic_items_per_s": synthetic / dt, "training_items_per_s": items / dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = {"bank": bank(Path(tmp), args.epochs), "live": live(Path(tmp), args.batches)}
    for form, r in out.items():
        print(f"{form}: {r['synthetic_items_per_s']:.2f} synthetic items/s, {r['training_items_per_s']:.1f} "
              f"training items/s ({r['seconds']:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
