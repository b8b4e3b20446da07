"""AugmentedDataset throughput and memory vs the plain base dataset, through a 2-worker DataLoader.

    python -m bench.augmented_dataset            # 50,000 windows x 2500 samples (~500 MB bank on disk)
    python -m bench.augmented_dataset --quick    # 5,000 windows, for a smoke run

It writes, in a temporary directory on disk (not RAM):
  * a base dataset: float32 [N, 1, 2500] in one .npy read with positioned reads (like a memmap cache),
  * a synthetic bank of N windows (augframe.bank.Bank, shards of 1,000) and a small bank of N/5,
both filled by a cheap seeded function (sums of sines plus noise), then measures:
  * throughput (items/s of wall time) of one epoch through DataLoader(num_workers=2, batch_size=256)
    for the base and for AugmentedDataset(base, bank, ratio=0.33), alternating, median of --repeats
    epochs; and the CPU time per item (main process + workers), which other jobs on a shared
    machine disturb far less than wall time;
  * peak RSS of a fresh process (its VmHWM, and the largest of its 2 workers) iterating an
    AugmentedDataset epoch over the small and the large bank: it must not grow with the bank size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLES = 2500
NAMES = ("N", "A")


class NpyWindows:
    """A map-style (signal, label) dataset over one .npy file, read row by row with pread."""

    def __init__(self, path: Path, labels: np.ndarray, fs: float = 250.0) -> None:
        self.path, self._labels, self.fs = Path(path), labels, fs
        self.leads, self.class_names = ("II",), NAMES
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            shape, _, _ = np.lib.format.read_array_header_1_0(f) if version == (1, 0) else \
                np.lib.format.read_array_header_2_0(f)
            self._offset = f.tell()
        self._row = int(np.prod(shape[1:])) * 4
        self._shape = tuple(shape[1:])
        self._fd, self._pid = None, None

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, i: int):
        if self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        buf = bytearray(self._row)
        os.preadv(self._fd, [buf], self._offset + int(i) * self._row)
        return np.frombuffer(buf, np.float32).reshape(self._shape), int(self._labels[i])

    def __getstate__(self):
        return {**self.__dict__, "_fd": None, "_pid": None}


def _signals(start: int, n: int, seed: int) -> np.ndarray:
    """Cheap seeded ECG-sized content: two sines with per-window frequency and phase, plus noise."""
    rng = np.random.default_rng([seed, start])
    t = np.arange(SAMPLES, dtype=np.float32) / 250.0
    f = rng.uniform(0.8, 2.0, (n, 1)).astype(np.float32)
    ph = rng.uniform(0, 6.3, (n, 1)).astype(np.float32)
    x = np.sin(2 * np.pi * f * t + ph) + 0.3 * np.sin(2 * np.pi * 3 * f * t) + 0.05 * rng.standard_normal((n, SAMPLES))
    return x.astype(np.float32)[:, None, :]


def build_base(folder: Path, n: int) -> tuple[Path, np.ndarray]:
    path = folder / "base.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 1, SAMPLES))
    for s in range(0, n, 2000):
        arr[s:s + 2000] = _signals(s, min(2000, n - s), seed=1)
    arr.flush()
    del arr
    labels = (np.random.default_rng(2).random(n) < 0.3).astype(np.int64)
    return path, labels


def build_bank(folder: Path, n: int, shard: int = 1000) -> Path:
    from augframe import ECGBatch
    from augframe.bank import Bank

    bank = Bank.create(folder, fs=250.0, leads=("II",), n_samples=SAMPLES, class_names=NAMES)
    for s in range(0, n, shard):
        k = min(shard, n - s)
        labels = np.arange(s, s + k) % 2
        bank.append(ECGBatch(_signals(s, k, seed=3), 250.0, ("II",), labels=labels, class_names=NAMES),
                    [{"key": f"syn-{i}", "seed": i} for i in range(s, s + k)])
    bank.close()
    return folder


def _cpu_s() -> float:
    """CPU seconds of this process plus its finished children (the DataLoader workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def epoch_rate(dataset, batch_size: int, workers: int, cpu: list | None = None) -> float:
    """Items per second of wall time over one epoch; appends CPU microseconds per item to ``cpu``."""
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0), persistent_workers=False)
    c0, t0 = _cpu_s(), time.perf_counter()
    n = 0
    for batch in loader:
        n += len(batch[0])
    wall = time.perf_counter() - t0
    del loader  # workers exit and are reaped, so their CPU time is counted
    if cpu is not None:
        cpu.append((_cpu_s() - c0) / n * 1e6)
    return n / wall


def _rss_child(args: argparse.Namespace) -> None:
    """In a fresh process: one AugmentedDataset epoch; print peak RSS (MB) of self and of workers."""
    import torch

    torch.set_num_threads(1)
    from augframe.bank import Bank
    from augframe.dataset import AugmentedDataset

    labels = np.load(args.labels)
    base = NpyWindows(Path(args.base), labels)
    ds = AugmentedDataset(base, Bank.open(args.bank), ratio=args.ratio, seed=0)
    epoch_rate(ds, 256, 2)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"self_mb": round(_vm_hwm_mb(), 1), "worker_max_mb": round(kids, 1)}))


def _vm_hwm_mb() -> float:
    """Peak RSS of this process since its exec (ru_maxrss would carry the launching parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(base: Path, labels: Path, bank: Path, ratio: float) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.augmented_dataset", "--rss-child", "--base", str(base),
                          "--labels", str(labels), "--bank", str(bank), "--ratio", str(ratio)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="5,000 windows instead of 50,000")
    p.add_argument("--n", type=int, help="windows in the base and the large bank")
    p.add_argument("--ratio", type=float, default=0.33)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dir", help="where to build the data (default: a temp dir on disk)")
    p.add_argument("--out", help="write the figures as JSON here")
    p.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--base", help=argparse.SUPPRESS)
    p.add_argument("--labels", help=argparse.SUPPRESS)
    p.add_argument("--bank", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rss_child:
        _rss_child(args)
        return {}
    import torch

    torch.set_num_threads(1)
    from augframe.bank import Bank
    from augframe.dataset import AugmentedDataset

    n = args.n or (5000 if args.quick else 50_000)
    root = Path(args.dir or tempfile.mkdtemp(prefix="augframe-bench-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    try:
        t0 = time.perf_counter()
        base_path, labels = build_base(root, n)
        np.save(root / "labels.npy", labels)
        large = build_bank(root / "bank-large", n)
        small = build_bank(root / "bank-small", max(1000, n // 5))
        build_s = time.perf_counter() - t0
        base = NpyWindows(base_path, labels)
        aug = AugmentedDataset(base, Bank.open(large), ratio=args.ratio, seed=0)
        epoch_rate(base, args.batch_size, 2)  # warm the page cache for both
        epoch_rate(aug, args.batch_size, 2)
        rates_base, rates_aug, cpu_base, cpu_aug = [], [], [], []
        for r in range(args.repeats):  # alternate, so load from other jobs hits both alike
            aug.set_epoch(r)
            rates_base.append(epoch_rate(base, args.batch_size, 2, cpu_base))
            rates_aug.append(epoch_rate(aug, args.batch_size, 2, cpu_aug))
        paired = [a / b for a, b in zip(rates_aug, rates_base)]
        rss_small = peak_rss(base_path, root / "labels.npy", small, args.ratio)
        rss_large = peak_rss(base_path, root / "labels.npy", large, args.ratio)
        result = {
            "n_windows": n, "samples": SAMPLES, "bank_bytes": sum(f.stat().st_size for f in large.glob("*.npy")),
            "ratio": args.ratio, "batch_size": args.batch_size, "workers": 2, "repeats": args.repeats,
            "build_s": round(build_s, 1),
            "base_items_per_s": round(statistics.median(rates_base)),
            "augmented_items_per_s": round(statistics.median(rates_aug)),
            "throughput_ratio": round(statistics.median(rates_aug) / statistics.median(rates_base), 3),
            "paired_ratio_median": round(statistics.median(paired), 3),
            "rates_base": [round(x) for x in rates_base], "rates_augmented": [round(x) for x in rates_aug],
            "cpu_us_per_item_base": round(statistics.median(cpu_base), 1),
            "cpu_us_per_item_augmented": round(statistics.median(cpu_aug), 1),
            "cpu_ratio_base_over_augmented": round(statistics.median(cpu_base) / statistics.median(cpu_aug), 3),
            "rss_small_bank": {"bank_windows": max(1000, n // 5), **rss_small},
            "rss_large_bank": {"bank_windows": n, **rss_large},
            "torch": torch.__version__, "cpus": os.cpu_count(),
        }
        print(json.dumps(result, indent=1))
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        return result
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
