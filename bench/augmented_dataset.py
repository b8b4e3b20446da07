"""AugmentedDataset throughput and memory vs the plain base dataset, through a 2-worker DataLoader.

    python -m bench.augmented_dataset            # 50,000 windows x 2500 samples (~500 MB bank on disk)
    python -m bench.augmented_dataset --quick    # 5,000 windows, for a smoke run

It writes, in a temporary directory on disk (not RAM):
  * a base dataset: float32 [N, 1, 2500] in one .npy read with positioned reads (like a memmap cache),
  * a synthetic bank of N windows (augframe.bank.Bank, shards of 1,000) and a small bank of N/5,
both filled by a cheap seeded function (sums of sines plus noise), reads every file once so that
base and bank both sit in the OS page cache (one epoch of the base reads all of it, one epoch of
the augmented set only a third of the bank), then measures:
  * throughput (items/s of wall time) of one epoch through DataLoader(num_workers=2, batch_size=256,
    shuffle=True, same seeded order) for the base and for AugmentedDataset(base, bank, ratio=0.33),
    alternating, median of --repeats epochs and median of the paired (adjacent) epoch ratios; and
    the CPU time per item (main process + workers), which other jobs on a shared machine disturb
    far less than wall time;
  * where one item's CPU goes, in one process (no DataLoader): base[i], AugmentedDataset per item
    and per batch (__getitems__, what a DataLoader calls), Bank[i], Bank.read, default_collate;
  * peak RSS of a fresh process (its VmHWM, and the largest of its 2 workers) iterating an
    AugmentedDataset epoch over the small and the large bank: it must not grow with the bank size.

Fair comparison: the base is a plain per-item dataset (no __getitems__) yielding (signal, label);
the AugmentedDataset wraps that same object and fetches each real item through base[i], exactly
as the plain loader does, so it gets no real item cheaper than the base; it does all its own work
per item (its per-epoch plan, bank reads, the label and the synthetic flag of every item, which the
default collate turns into a third tensor). What it saves is in its own overhead: one call per batch
instead of one per item, bank samples read into one buffer per batch, and labels and flags sent from
a worker to the main process as one tensor (see augframe.dataset.AugmentedItem).
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

    bank = Bank.create(folder, fs=250.0, leads=("II",), samples_per_window=SAMPLES, class_names=NAMES)
    for s in range(0, n, shard):
        k = min(shard, n - s)
        labels = np.arange(s, s + k) % 2
        bank.append(ECGBatch(_signals(s, k, seed=3), 250.0, ("II",), labels=labels, class_names=NAMES),
                    [{"key": f"syn-{i}", "seed": i} for i in range(s, s + k)])
    bank.close()
    return folder


def _cpu_s() -> tuple[float, float]:
    """CPU seconds of this process and of its finished children (the DataLoader workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def epoch_rate(dataset, batch_size: int, workers: int, cpu: list | None = None, epoch: int | None = None) -> float:
    """Items per second of wall time over one epoch.

    Appends (CPU us per item of main + workers, of the main process alone) to ``cpu``. With
    ``epoch``, ``dataset.set_epoch(epoch)`` (which computes the epoch's plan) is inside the timing.
    """
    import torch
    from torch.utils.data import DataLoader

    (m0, k0), t0 = _cpu_s(), time.perf_counter()
    if epoch is not None:
        dataset.set_epoch(epoch)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0), persistent_workers=False)
    n = 0
    for batch in loader:
        n += len(batch[0])
    wall = time.perf_counter() - t0
    del loader  # workers exit and are reaped, so their CPU time is counted
    if cpu is not None:
        m1, k1 = _cpu_s()
        cpu.append(((m1 - m0 + k1 - k0) / n * 1e6, (m1 - m0) / n * 1e6))
    return n / wall


def warm_page_cache(paths: list[Path]) -> None:
    """Read each file once (into a small buffer: the page cache fills, this process's RSS does not)."""
    buf = bytearray(1 << 22)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def per_item_cpu(base, aug, batch_size: int, n_batches: int = 40, rounds: int = 9) -> dict:
    """CPU us per item of each step of the item path in this process (min over ``rounds``)."""
    from torch.utils.data import default_collate

    rng = np.random.default_rng(7)
    batches = [rng.permutation(len(base))[:batch_size].tolist() for _ in range(n_batches)]
    syn, pick = aug.plan()
    bank_batches = [pick[b][syn[b]].tolist() for b in batches]
    n_items = sum(len(b) for b in batches)
    n_bank = sum(len(b) for b in bank_batches)
    batched = hasattr(aug, "__getitems__")  # False for augframe before the batched path (to compare)
    def each(fn, groups):  # one batch at a time, its results dropped, as in a DataLoader worker
        def run():
            for g in groups:
                fn(g)
        return run

    steps = {
        "base[i]": (each(lambda b: [base[i] for i in b], batches), n_items),
        "augmented[i]": (each(lambda b: [aug[i] for i in b], batches), n_items),
        "augmented.__getitems__": (each(lambda b: aug.__getitems__(b), batches), n_items),
        "bank[j]": (each(lambda b: [aug.bank[j] for j in b], bank_batches), n_bank),
        "bank.read (per sample)": (each(lambda b: aug.bank.read(b), bank_batches), n_bank),
    }
    if not batched:
        del steps["augmented.__getitems__"], steps["bank.read (per sample)"]
    base_items = [[base[i] for i in b] for b in batches[:8]]
    aug_items = [aug.__getitems__(b) if batched else [aug[i] for i in b] for b in batches[:8]]
    steps["default_collate of base items"] = (each(default_collate, base_items), 8 * batch_size)
    steps["default_collate of augmented items"] = (each(default_collate, aug_items), 8 * batch_size)
    for fn, _count in steps.values():
        fn()  # warm
    best = {name: float("inf") for name in steps}
    for _ in range(rounds):  # steps interleaved, so a burst of other jobs hits them alike
        for name, (fn, _count) in steps.items():
            c0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - c0)
    return {name: round(best[name] / max(count, 1) * 1e6, 2) for name, (_fn, count) in steps.items()}


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


def _complete(root: Path, n: int) -> bool:
    """Whether ``root`` holds the base, labels and both banks of a finished build for ``n`` windows."""
    from augframe.bank import Bank
    from augframe.errors import AugframeError

    try:
        if np.load(root / "base.npy", mmap_mode="r").shape != (n, 1, SAMPLES) or len(np.load(root / "labels.npy")) != n:
            return False
        return (len(Bank.open(root / "bank-large", verify="none")) == n
                and len(Bank.open(root / "bank-small", verify="none")) == max(1000, n // 5))
    except (OSError, ValueError, AugframeError):  # anything missing or half built: build afresh
        return False


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="5,000 windows instead of 50,000")
    p.add_argument("--n", type=int, help="windows in the base and the large bank")
    p.add_argument("--ratio", type=float, default=0.33)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dir", help="where to build the data, kept and reused by later runs with the same --n "
                                 "(default: a temp dir on disk, deleted afterwards)")
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
        root.mkdir(parents=True, exist_ok=True)
        base_path, large, small = root / "base.npy", root / "bank-large", root / "bank-small"
        if args.dir and _complete(root, n):  # data of an earlier run with the same --n: reuse it
            labels = np.load(root / "labels.npy")
        else:
            for old in (large, small):
                shutil.rmtree(old, ignore_errors=True)
            base_path, labels = build_base(root, n)
            np.save(root / "labels.npy", labels)
            large = build_bank(large, n)
            small = build_bank(small, max(1000, n // 5))
        build_s = time.perf_counter() - t0
        base = NpyWindows(base_path, labels)
        aug = AugmentedDataset(base, Bank.open(large), ratio=args.ratio, seed=0)
        load_start = os.getloadavg()
        warm_page_cache([base_path, *sorted(large.glob("*.npy"))])
        epoch_rate(base, args.batch_size, 2)  # warm-up epochs (imports, allocator)
        epoch_rate(aug, args.batch_size, 2)
        rates_base, rates_aug, cpu_base, cpu_aug = [], [], [], []
        for r in range(args.repeats):  # alternate (ABBA order), so load from other jobs hits both alike
            runs = [lambda: rates_base.append(epoch_rate(base, args.batch_size, 2, cpu_base)),
                    lambda: rates_aug.append(epoch_rate(aug, args.batch_size, 2, cpu_aug, epoch=r + 1))]
            for run in runs if r % 2 == 0 else runs[::-1]:  # epoch r + 1: a new plan, its making timed
                run()
        load_end = os.getloadavg()
        paired = [a / b for a, b in zip(rates_aug, rates_base)]
        cpu_paired = [b[0] / a[0] for a, b in zip(cpu_aug, cpu_base)]
        micro = per_item_cpu(base, aug, args.batch_size)
        rss_small = peak_rss(base_path, root / "labels.npy", small, args.ratio)
        rss_large = peak_rss(base_path, root / "labels.npy", large, args.ratio)
        med = statistics.median
        result = {
            "compared": {"base": "NpyWindows: plain per-item dataset, one pread of a .npy per item, "
                                 "items (signal float32 [1, 2500], label int)",
                         "augmented": f"AugmentedDataset(base, Bank of {n}, ratio={args.ratio}): items (signal, "
                                      "label, synthetic); real items through base[i]"},
            "n_windows": n, "samples": SAMPLES, "bank_bytes": sum(f.stat().st_size for f in large.glob("*.npy")),
            "ratio": args.ratio, "batch_size": args.batch_size, "workers": 2, "repeats": args.repeats,
            "build_s": round(build_s, 1),
            "base_items_per_s": round(med(rates_base)),
            "augmented_items_per_s": round(med(rates_aug)),
            "throughput_ratio": round(med(rates_aug) / med(rates_base), 3),
            "paired_ratio_median": round(med(paired), 3),
            "rates_base": [round(x) for x in rates_base], "rates_augmented": [round(x) for x in rates_aug],
            "cpu_us_per_item_base": round(med(c[0] for c in cpu_base), 1),
            "cpu_us_per_item_augmented": round(med(c[0] for c in cpu_aug), 1),
            "cpu_ratio_base_over_augmented": round(med(c[0] for c in cpu_base) / med(c[0] for c in cpu_aug), 3),
            "cpu_ratio_paired_median": round(med(cpu_paired), 3),
            "cpu_us_per_item_main_process": {"base": round(med(c[1] for c in cpu_base), 1),
                                             "augmented": round(med(c[1] for c in cpu_aug), 1)},
            "cpu_us_per_item_in_process": micro,
            "rss_small_bank": {"bank_windows": max(1000, n // 5), **rss_small},
            "rss_large_bank": {"bank_windows": n, **rss_large},
            "load_average_start_end": [round(x, 2) for x in (*load_start, *load_end)],
            "torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
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
