"""Scaling bench: FLOPs per generated ECG and their floors, 1 vs 2 process training, all-reduce volume.

    python -m bench.scale --quick          # ~3-5 min on an idle 2-core CPU (~9 min on a busy one)
    python -m bench.scale                  # paper width in the throughput runs too (slow on a CPU)

1. FLOPs (torch.utils.flop_counter) of the DiffStyleTS networks at the paper configuration, built
   through the plugin registry (``create('generator', 'diffstylets')`` + a zero-epoch ``fit``, which
   gives freshly initialised paper-width networks; FLOPs do not depend on weight values): UNet
   forward, encoders, one stage-1 training sample (forward + backward, measured, not 3x assumed),
   one SDEdit ECG (steps x 2 CFG passes + encoders) and the floors those imply at a device's
   matrix rate.
2. Stage-1-like training throughput through :func:`augframe.distributed.train_steps` with gloo:
   1 process (2 threads, 1 thread) vs 2 processes (1 thread each) at the same global batch, the
   gradient bytes DDP all-reduces per step (:class:`bench.comm.CommMeter`) and the
   measured gloo all-reduce bandwidth for that payload.
3. A projection for N GPUs from the measured volume (written out; assumptions stated).
Figures go to ``.notes/bench-scale.md`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

CPU_FP32, CPU_BF16 = 195e9, 470e9       # this CPU kind, 2048^2 matmul (shared/reference/timings.md)
H200_BF16 = 790e12                       # measured on this workplace's H200s (same reference)
T_STEPS = 1000


# ---- the model, through the registry ---------------------------------------------------------
def build_diffstylets(width: int, length: int, seed: int = 0) -> Any:
    """A freshly initialised DiffStyleTS (content, style, UNet) via the registry; returns gen.model."""
    from augframe.plugins import Registry
    from augframe.signals import ECGBatch

    groups = min(32, width)
    gen = Registry.discover().create("generator", "diffstylets", {
        "device": "cpu", "mode": "improved", "bank_per_class": 2,
        "model": {"model_channels": width, "norm_groups": groups},
        "train": {"stage1_epochs": 0, "stage2_epochs": 0, "batch_size": 2}})
    x = np.random.default_rng(seed).standard_normal((4, 1, length)).astype(np.float32)
    gen.fit(ECGBatch(x, 250.0, ("II",), labels=[0, 1, 0, 1], class_names=("N", "A")), seed=seed)
    return gen.model


def alpha_bar(device: Any = "cpu") -> torch.Tensor:
    s = torch.linspace(0, T_STEPS, T_STEPS + 1, dtype=torch.float64)
    f = torch.cos(((s / T_STEPS) + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(1e-4, 0.9999)
    return torch.cumprod(1 - betas, 0).float().to(device)


class Stage1(torch.nn.Module):
    """Stage-1 loss as ONE module (what DDP wraps): eps-MSE + 0.5 CE(style head) + 0.01 KL(content).

    All randomness (timestep, diffusion noise, VAE noise) comes from the per-sample seeds, so the
    loss of a sample is the same on any rank.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("ab", alpha_bar(), persistent=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        from augframe.seeding import randn

        m = self.model
        mu, logvar = m.content_encoder.moments(x)
        z = mu + torch.exp(0.5 * logvar) * randn(seeds, (mu.shape[1],), stream=3, device=x.device)
        style, logits = m.style_encoder(x)
        t = seeds % T_STEPS
        noise = randn(seeds, tuple(x.shape[1:]), stream=1, device=x.device)
        ab = self.ab[t].view(-1, 1, 1)
        eps = m.unet(ab.sqrt() * x + (1 - ab).sqrt() * noise, t, z, style, y)
        kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
        return (torch.nn.functional.mse_loss(eps.float(), noise) + 0.5 * torch.nn.functional.cross_entropy(logits, y)
                + 0.01 * kl)


def stage1_loss(model: Any, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    return model(batch.x, batch.y, batch.seeds), {}


# ---- 1. FLOPs --------------------------------------------------------------------------------
def flops_section(steps: int = 50, guidance_passes: int = 2) -> dict[str, Any]:
    from torch.utils.flop_counter import FlopCounterMode

    from augframe.seeding import derive_seeds

    model = build_diffstylets(64, 2500).eval()
    n_unet = sum(p.numel() for p in model.unet.parameters())
    n_all = sum(p.numel() for p in model.parameters())
    x = torch.randn(1, 1, 2500)
    y = torch.tensor([1])
    with torch.no_grad():
        mu, _ = model.content_encoder.moments(x)
        style, _ = model.style_encoder(x)
        with FlopCounterMode(display=False) as fc:
            model.unet(x, torch.tensor([500]), mu, style, y)
        unet = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc:
            model.content_encoder.moments(x)
            model.style_encoder(x)
        enc = fc.get_total_flops()
    train_model = Stage1(model).train()
    xb, yb = torch.randn(2, 1, 2500), torch.tensor([0, 1])
    seeds = torch.from_numpy(derive_seeds(0, 2))
    with FlopCounterMode(display=False) as fc:
        train_model(xb, yb, seeds).backward()
    train = fc.get_total_flops() / 2
    sdedit = steps * guidance_passes * unet + enc
    return {"unet_params": n_unet, "all_params": n_all, "unet_fwd": unet, "encoders_fwd": enc,
            "train_sample": train, "sdedit_ecg": sdedit, "steps": steps}


# ---- 2. throughput on 1 vs 2 processes --------------------------------------------------------
def _train_worker(out: str, width: int, length: int, global_batch: int, warmup: int, steps: int) -> None:
    import torch.distributed as dist

    from augframe.distributed import TrainPlan, init_distributed, shutdown, train_steps, unwrap, wrap_model
    from augframe.signals import ECGBatch
    from augframe.windows import ArrayWindows
    from bench.comm import CommMeter

    ctx = init_distributed("cpu")
    net = Stage1(build_diffstylets(width, length))
    n_params = sum(p.numel() for p in net.parameters())
    buffers = sum(b.numel() * b.element_size() for b in net.buffers())
    model = wrap_model(net, ctx)
    meter = CommMeter().attach(model) if ctx.active else None
    opt = torch.optim.AdamW(unwrap(model).parameters(), lr=1e-4, weight_decay=1e-5)
    rng = np.random.default_rng(1)
    n = global_batch * (warmup + steps)
    data = ArrayWindows(ECGBatch(rng.standard_normal((n, 1, length)).astype(np.float32), 250.0, ("II",),
                                 labels=rng.integers(0, 2, n), class_names=("N", "A")))
    plan = TrainPlan(global_batch=global_batch, max_steps=warmup, grad_clip=1.0, log_every=1_000_000)
    train_steps(ctx, model, opt, data, stage1_loss, plan)
    if meter:
        meter.reset()
    stamps: list[tuple[float, float]] = []
    plan = TrainPlan(global_batch=global_batch, max_steps=steps, grad_clip=1.0, log_every=1_000_000)
    t0 = (time.perf_counter(), time.process_time())
    train_steps(ctx, model, opt, data, stage1_loss, plan,
                on_step=lambda p: stamps.append((time.perf_counter(), time.process_time())))
    times = np.diff([t0[0], *(w for w, _ in stamps)]).tolist()
    cpu = np.diff([t0[1], *(c for _, c in stamps)])
    cpu_all = [None] * ctx.world_size
    if ctx.active:
        dist.all_gather_object(cpu_all, cpu.tolist())
    else:
        cpu_all = [cpu.tolist()]
    result: dict[str, Any] = {"world_size": ctx.world_size, "threads": torch.get_num_threads(), "step_s": times,
                              "cpu_s_per_rank": [statistics.median(c) for c in cpu_all],
                              "params": n_params, "param_bytes": 4 * n_params, "buffer_bytes": buffers}
    if meter:
        result["allreduce_bytes_per_step"] = meter.bytes / steps
        result["buckets_per_step"] = meter.buckets / steps
        payload = torch.zeros(int(meter.bytes / steps) // 4)
        dist.all_reduce(payload)  # warm-up
        reps = []
        for _ in range(5):
            dist.barrier()
            t = time.perf_counter()
            dist.all_reduce(payload)
            reps.append(time.perf_counter() - t)
        result["allreduce_s"] = statistics.median(reps)
    if ctx.is_main:
        Path(out).write_text(json.dumps(result))
    shutdown(ctx)


def throughput_section(width: int, length: int, global_batch: int, warmup: int, steps: int) -> list[dict[str, Any]]:
    from augframe.distributed import launch

    rows = []
    for world, threads in ((1, 2), (1, 1), (2, 1)):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "r.json"
            launch(_train_worker, world, str(out), width, length, global_batch, warmup, steps, threads=threads)
            r = json.loads(out.read_text())
        r["median_step_s"] = statistics.median(r["step_s"])
        r["samples_per_s"] = global_batch / r["median_step_s"]
        r["cpu_step_s"] = max(r["cpu_s_per_rank"])
        rows.append(r)
        print(f"  {world} process(es) x {threads} thread(s): {r['samples_per_s']:.2f} samples/s "
              f"(median step {r['median_step_s']:.3f} s wall, {r['cpu_step_s']:.3f} s CPU on the busiest rank)",
              flush=True)
    return rows


# ---- 3. projection ---------------------------------------------------------------------------
def ring_time(payload: float, n: int, busbw: float) -> float:
    """Seconds of one ring all-reduce of ``payload`` bytes over n ranks at bus bandwidth ``busbw``."""
    return 0.0 if n <= 1 else payload * 2 * (n - 1) / n / busbw


def projection(payload: float, train_flops: float, mfu: float) -> list[tuple[Any, ...]]:
    """Step time and samples/s for N GPUs (weak scaling, communication NOT overlapped = worst case).

    Rows vary the link, the per-GPU batch and the gradient dtype on the wire (bf16 = DDP's
    ``bf16_compress_hook``, half the payload).
    """
    rows = []
    for n, link, bw, batch, wire in ((1, "-", 1.0, 32, "fp32"), (8, "NVLink, 1 node", 350e9, 32, "fp32"),
                                     (64, "IB 400 Gb/s, 8 nodes", 40e9, 32, "fp32"),
                                     (64, "IB 400 Gb/s, 8 nodes", 40e9, 32, "bf16"),
                                     (64, "IB 400 Gb/s, 8 nodes", 40e9, 128, "fp32"),
                                     (64, "IB 400 Gb/s, 8 nodes", 40e9, 128, "bf16")):
        compute = batch * train_flops / (H200_BF16 * mfu)
        comm = ring_time(payload / (2 if wire == "bf16" else 1), n, bw)
        step = compute + comm
        rows.append((n, link, batch, wire, compute * 1e3, comm * 1e3, n * batch / step, compute / step))
    return rows


# ---- report ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="narrow UNet (width 16) in the throughput runs")
    ap.add_argument("--out", default=".notes/bench-scale.md", help="markdown file for the figures")
    ap.add_argument("--global-batch", type=int, default=8)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    width = 16 if args.quick else 64
    warmup, steps = (1, 4) if args.quick else (2, 8)
    length = 2500
    cmd = "python -m bench.scale" + (" --quick" if args.quick else "")
    print("[scale] FLOPs at the paper configuration ...", flush=True)
    f = flops_section()
    print(f"  UNet forward {f['unet_fwd'] / 1e9:.2f} GFLOP, SDEdit ECG {f['sdedit_ecg'] / 1e9:.0f} GFLOP, "
          f"stage-1 sample {f['train_sample'] / 1e9:.1f} GFLOP", flush=True)
    print(f"[scale] stage-1 training throughput, UNet width {width}, length {length}, global batch "
          f"{args.global_batch} ...", flush=True)
    rows = throughput_section(width, length, args.global_batch, warmup, steps)
    two = rows[2]
    payload = two["allreduce_bytes_per_step"]
    gloo_bw = payload / two["allreduce_s"]
    paper_payload = 4 * f["all_params"]
    lines = [
        "# bench-scale (issue 10): FLOPs, floors, 1 vs 2 process training, all-reduce volume",
        "",
        f"- Command: `{cmd}`; torch {torch.__version__}, Python {platform.python_version()}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s) in the parent, no GPU.",
        "- The machine (2 vCPUs) was shared with other jobs while this ran: step times are medians of "
        f"{steps} timed steps after {warmup} warm-up steps, one run per row; expect 10-30 % noise.",
        "",
        "## FLOPs per ECG at the paper configuration (torch.utils.flop_counter, fresh weights)",
        "",
        "| quantity | GFLOP |",
        "|---|---:|",
        f"| UNet forward, 1 ECG of 2500 samples ({f['unet_params']:,} UNet params) | {f['unet_fwd'] / 1e9:.2f} |",
        f"| content + style encoder forward, 1 ECG | {f['encoders_fwd'] / 1e9:.2f} |",
        f"| one SDEdit ECG: {f['steps']} steps x 2 (CFG) UNet forwards + encoders | {f['sdedit_ecg'] / 1e9:.0f} |",
        f"| one stage-1 training sample: forward + backward of all 3 networks (measured) | "
        f"{f['train_sample'] / 1e9:.1f} |",
        "",
        "Floors (FLOPs / matrix rate; no device reaches its peak, so real runs are slower):",
        "",
        "| device (rate) | SDEdit ECG/s floor | stage-1 samples/s floor |",
        "|---|---:|---:|",
    ]
    for name, rate in (("this CPU kind, fp32 (195 GFLOP/s)", CPU_FP32), ("this CPU kind, bf16 AMX (470 GFLOP/s)", CPU_BF16),
                       ("H200 bf16 (790 TFLOP/s measured)", H200_BF16)):
        lines.append(f"| {name} | {rate / f['sdedit_ecg']:,.2f} | {rate / f['train_sample']:,.1f} |")
    lines += [
        "",
        "GPU targets, NOT measurable here (no GPU in this task): generation >= 500 ECG/s at the paper "
        "configuration (50 DDIM steps, CFG) and stage-1 training >= 8,000 samples/s on an H100/H200, i.e. "
        f"{500 / (H200_BF16 / f['sdedit_ecg']):.0%} and {8000 / (H200_BF16 / f['train_sample']):.0%} of the "
        "H200 bf16 floors above.",
        "",
        f"## Stage-1 training throughput, gloo on this CPU (UNet width {width}, {two['params']:,} params, "
        f"length {length}, global batch {args.global_batch})",
        "",
        "Same global batch, same per-sample seeds (the runs compute the same updates); "
        "`augframe.distributed.train_steps` with AdamW and grad clipping.",
        "",
        "| processes x threads | median step s (wall) | samples/s (wall) | wall ratio to 1 x 1 | "
        "CPU s per step, busiest rank | CPU-time ratio to 1 x 1 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base, base_cpu = rows[1]["samples_per_s"], rows[1]["cpu_step_s"]
    for r in rows:
        lines.append(f"| {r['world_size']} x {r['threads']} | {r['median_step_s']:.3f} | {r['samples_per_s']:.2f} | "
                     f"{r['samples_per_s'] / base:.2f} | {r['cpu_step_s']:.3f} | {base_cpu / r['cpu_step_s']:.2f} |")
    load = os.getloadavg()[0]
    lines += [
        "",
        f"Load average when the runs ended: {load:.1f} on {os.cpu_count()} vCPUs. Wall-clock speed-up needs a free "
        "core per process; on a busy box the second process gets none, so the wall ratio shows the load. The CPU "
        "time of the busiest rank per step (time.process_time) is what each process computes, load or not: "
        "the 2 x 1 CPU-time ratio is the speed-up two free cores would give (the gloo all-reduce below included). "
        "The 1 x 2 row (one process, 2 OpenMP threads) suffers most from the over-subscription.",
        "",
        f"All-reduce per step (2 ranks, measured with a DDP comm hook): {payload / 1e6:.2f} MB in "
        f"{two['buckets_per_step']:.0f} buckets = the fp32 gradients of all {two['params']:,} parameters "
        f"({two['param_bytes'] / 1e6:.2f} MB); DDP also broadcasts {two['buffer_bytes'] / 1e3:.1f} kB of buffers "
        f"(BatchNorm statistics) per forward. gloo all-reduce of that payload between the 2 local processes: "
        f"{two['allreduce_s'] * 1e3:.1f} ms ({gloo_bw / 1e9:.2f} GB/s algorithm bandwidth). At the paper width the "
        f"payload is {paper_payload / 1e6:.1f} MB per step (4 bytes x {f['all_params']:,} params), independent of the batch.",
        "",
        "## Projection for N GPUs (stage 1, weak scaling)",
        "",
        f"Payload {paper_payload / 1e6:.1f} MB/step (fp32 gradients); ring all-reduce time = payload x 2(N-1)/N / "
        "bus bandwidth; assumed bus bandwidths 350 GB/s in one NVLink node, 40 GB/s across nodes (400 Gb/s "
        "InfiniBand per GPU); compute at 40 % of the H200 bf16 rate; no overlap of communication with the "
        "backward pass (DDP does overlap, so these are lower bounds on scaling).",
        "",
        "| GPUs | link | per-GPU batch | gradients on the wire | compute ms | all-reduce ms | samples/s | "
        "scaling efficiency |",
        "|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for n, link, batch, wire, c, m, sps, eff in projection(paper_payload, f["train_sample"], 0.4):
        lines.append(f"| {n} | {link} | {batch} | {wire} | {c:.2f} | {m:.2f} | {sps:,.0f} | {eff:.0%} |")
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
