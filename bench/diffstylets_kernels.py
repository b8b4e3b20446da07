"""The kernel-level figures behind the DiffStyleTS time-major engine (docs/benchmarks.md, third session).

Three probes, each a ratio measured in this run (median of repeats, bf16 on the CPU):

* ``conv``: one UNet convolution (B = 16, k = 3) as oneDNN ``conv1d`` on ``[N, C, L]`` vs the engine's
  unfold + matmul, at the UNet's odd lengths and their even neighbours (GFLOP/s);
* ``norm``: GroupNorm of a time-major activation by PyTorch's channels-last kernel vs a channels-first
  copy, at the shapes where the engine switches (ms);
* ``rows``: the engine's cost per row as the batch grows (ms per row), the reason it runs 16 rows at a time.

    python -m bench.diffstylets_kernels [--threads 1] [--repeats 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from augframe_diffstylets.config import ModelConfig
from augframe_diffstylets.model import ConditionalUNet
from augframe_diffstylets.timemajor import PackedConv, TimeMajorUNet

BF16 = torch.bfloat16


def ms(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall milliseconds of ``fn`` after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def conv_probe(repeats: int) -> list[dict[str, Any]]:
    rows = []
    for c_in, c_out, n in [(512, 512, 313), (512, 512, 312), (256, 256, 625), (256, 256, 624), (1024, 512, 313)]:
        conv = nn.Conv1d(c_in, c_out, 3, padding=1).to(BF16)
        x = torch.randn(16, c_in, n, dtype=BF16)
        xt = x.transpose(1, 2).contiguous()
        packed = PackedConv(conv, BF16)
        gflop = 2 * 16 * c_in * c_out * 3 * n / 1e9
        t_dnn = ms(lambda: F.conv1d(x, conv.weight, conv.bias, padding=1), repeats)
        t_mm = ms(lambda: packed(xt), repeats)
        rows.append({"c_in": c_in, "c_out": c_out, "L": n, "onednn_gflops": gflop / t_dnn * 1e3,
                     "unfold_matmul_gflops": gflop / t_mm * 1e3, "ratio": t_dnn / t_mm})
    return rows


def norm_probe(repeats: int) -> list[dict[str, Any]]:
    rows = []
    for n, c in [(625, 128), (625, 256), (625, 512), (313, 512), (1250, 256), (2500, 128)]:
        norm = nn.GroupNorm(32, c).to(BF16)
        h = torch.randn(16, n, c, dtype=BF16)
        t_cl = ms(lambda: F.group_norm(h.transpose(1, 2).unsqueeze(2), 32, norm.weight, norm.bias), repeats)
        t_cf = ms(lambda: F.group_norm(h.transpose(1, 2).contiguous(), 32, norm.weight, norm.bias)
                  .transpose(1, 2).contiguous(), repeats)
        rows.append({"L": n, "C": c, "channels_per_group": c // 32, "channels_last_ms": t_cl,
                     "channels_first_copy_ms": t_cf, "engine_takes": "channels-last" if n >= 1024 or c // 32 >= 16
                     else "channels-first"})
    return rows


def rows_probe(repeats: int) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    engine = TimeMajorUNet(ConditionalUNet(ModelConfig()).eval(), BF16, chunk=1 << 20)  # no chunking: measure it
    out = []
    for b in (8, 16, 32, 64):
        args = (torch.randn(b, 1, 2500), torch.full((b,), 300), torch.randn(b, 256), torch.randn(b, 128),
                torch.ones(b, dtype=torch.long))
        out.append({"rows": b, "ms_per_row": ms(lambda: engine(*args), max(1, repeats // 2)) / b})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with torch.inference_mode():
        res = {"torch": torch.__version__, "threads": args.threads, "repeats": args.repeats,
               "conv": conv_probe(args.repeats), "norm": norm_probe(args.repeats), "rows": rows_probe(args.repeats)}
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
