"""DiffStyleTS on the CPU at paper width: FLOPs, floors, generation s/ECG and stage-1 samples/s.

Every figure is measured in this run beside a baseline built from the same modules:

* **FLOPs** of one UNet forward per ECG (``torch.utils.flop_counter``; the reference: 7.68 GFLOP) and
  the floors they imply on this CPU kind (195 GFLOP/s float32, 470 bf16; ../shared/reference/timings.md).
* **Generation**: the reference's loop (batch 1, conditional and unconditional UNet passes as two
  forwards, ``torch.no_grad``, Savitzky-Golay with scipy on the host) against ours (micro-batched,
  one fused forward of 2B per step, ``inference_mode``, smoothing as a conv on the device) in float32
  and in bf16, twice: a bf16 copy of the ``nn.Module`` (oneDNN convolutions) and the generator's CPU
  path, :class:`~augframe_diffstylets.timemajor.TimeMajorUNet` (time-major, one AMX matmul per
  convolution); the bf16 output is compared with float32 (max abs error, Pearson r).
* ``--compile`` adds the bf16 UNet through ``torch.compile`` with frozen weights (the generator's
  ``compile = true``); its one-off compile time is reported apart and left out of the per-ECG time.
* **Stage-1 training** step at batch 8 (forward, backward, clip, AdamW) of the training loop.

    python -m bench.diffstylets_cpu [--quick] [--steps 50] [--ecgs 4] [--threads 1] [--compile] [--json OUT]

``--quick`` uses 5 sampler steps and 2 ECGs; per-ECG times are also given scaled to 50 steps (the
cost per step is constant). The reference's own figures (8 s per SDEdit ECG, 2 s per batch-8 stage-1
step) were taken uncontended with 2 threads; compare ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from augframe.diffusion import NoiseSchedule
from augframe.seeding import derive_seeds
from augframe_diffstylets.config import ModelConfig, TrainConfig
from augframe_diffstylets.model import ConditionalUNet, DiffStyleTS
from augframe_diffstylets.normalise import Normaliser
from augframe_diffstylets.sampler import sdedit
from augframe_diffstylets.smoothing import savgol

REF_SDEDIT_S = 8.0  # reference: s per SDEdit ECG (50 steps, CFG 3), 2 vCPU, timings.md
REF_STAGE1_STEP_S = 2.0  # reference: s per stage-1 step at batch 8
FLOOR_FP32, FLOOR_BF16 = 195e9, 470e9  # FLOP/s on this CPU kind (2048^2 matmul, 2 threads)


CPU_TIMES: dict[str, float] = {}


def median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1, label: str = "") -> float:
    """Median wall seconds; the median process CPU seconds go to CPU_TIMES[label] (less hit by contention)."""
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if label:
        CPU_TIMES[label] = statistics.median(cpu)
    return statistics.median(times)


def unet_gflop(unet: ConditionalUNet, length: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, 1, length)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        unet(x, torch.tensor([300]), torch.randn(1, 256), torch.randn(1, 128), torch.tensor([1]))
    return counter.get_total_flops() / 1e9


def encoders_gflop(model: DiffStyleTS, length: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.encode(torch.randn(1, 1, length))
    return counter.get_total_flops() / 1e9


def load_reference_weights(model: DiffStyleTS) -> bool:
    from bench.diffstylets_parity import reference_dir

    ref = reference_dir()
    files = {"content_encoder": "content_encoder.pt", "style_encoder": "style_encoder.pt", "unet": "unet_mc64.pt"}
    if not all((ref / f).is_file() for f in files.values()):
        return False
    for name, f in files.items():
        state = torch.load(ref / f, weights_only=True)["state_dict"]
        getattr(model, name).load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    return True


def baseline_generate(model: DiffStyleTS, x: torch.Tensor, y: torch.Tensor, steps: int, schedule: NoiseSchedule
                      ) -> np.ndarray:
    """The reference's way: one ECG at a time, two UNet forwards per step, scipy smoothing on the host."""
    from scipy.signal import savgol_filter

    outs = []
    with torch.no_grad():
        for i in range(len(x)):
            xi = x[i:i + 1]
            content, style = model.encode(xi)
            out, _ = sdedit(model.unet, schedule, xi, content, style, y[i:i + 1], derive_seeds(0, 1, i),
                            null_class=2, steps=steps, guidance=3.0, mode="faithful", fused=False)
            outs.append(savgol_filter(out.numpy(), 11, 3, axis=-1))
    return np.concatenate(outs)


def ours_generate(model: DiffStyleTS, unet: Any, x: torch.Tensor, y: torch.Tensor, steps: int,
                  schedule: NoiseSchedule) -> torch.Tensor:
    """Ours: the whole micro-batch at once, fused CFG forward of 2B, inference mode, device smoothing."""
    with torch.inference_mode():
        content, style = model.encode(x)
        out, _ = sdedit(unet, schedule, x, content, style, y, derive_seeds(0, len(x)), null_class=2, steps=steps,
                        guidance=3.0, mode="faithful")
        return savgol(out)


def bf16_unet(unet: ConditionalUNet, compiled: bool = False, engine: str = "timemajor") -> Callable[..., torch.Tensor]:
    """The bf16 UNet call: ``timemajor`` (the generator's CPU path) or ``module`` (a bf16 copy of the nn.Module)."""
    import copy

    from augframe_diffstylets.timemajor import TimeMajorUNet

    bf = TimeMajorUNet(unet, torch.bfloat16) if engine == "timemajor" else copy.deepcopy(unet).to(torch.bfloat16).eval()
    if compiled:
        from augframe.training import compile_module

        bf = compile_module(bf, "cpu", cpu=True)

    def call(x, t, c, s, y):
        return bf(x.to(torch.bfloat16), t, c.to(torch.bfloat16), s.to(torch.bfloat16), y).float()

    return call


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a @ b) / np.sqrt((a @ a) * (b @ b)))


def train_step_seconds(model: DiffStyleTS, batch: int, length: int, repeats: int) -> float:
    """One stage-1 optimiser step of the training loop (loss, backward, clip, AdamW) on a fixed batch."""
    from augframe.seeding import derive_seeds
    from augframe_diffstylets.stages import StageLoss, batch_seed, loss_step

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(0, 0.06, (batch, 1, length)).astype(np.float32))
    y = torch.as_tensor(np.arange(batch) % 2)
    cfg = TrainConfig(batch_size=batch, judge="")
    loss = StageLoss(model, cfg, "faithful", clamp=Normaliser().clamp)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    seeds, coin = torch.from_numpy(derive_seeds(0, batch)), batch_seed(0, 0, 0)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        total, _ = loss_step(loss, Normaliser().forward(x), y, seeds, coin)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()

    model.train()
    seconds = median_time(step, repeats, label="train")
    model.eval()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--ecgs", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also time the compiled bf16 UNet")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    steps = args.steps or (5 if args.quick else 50)
    n_ecg = args.ecgs or (2 if args.quick else 4)
    repeats = args.repeats or (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    length = 2500

    torch.manual_seed(0)
    model = DiffStyleTS(ModelConfig()).eval()
    real_weights = load_reference_weights(model)
    schedule = NoiseSchedule.cosine()
    res: dict[str, Any] = {
        "device": platform.processor() or platform.machine(), "torch": torch.__version__, "threads": args.threads,
        "steps": steps, "ecgs": n_ecg, "repeats": repeats, "reference_weights": real_weights,
    }
    g_unet, g_enc = unet_gflop(model.unet, length), encoders_gflop(model, length)
    per_ecg_flop = 2 * steps * g_unet * 1e9 + g_enc * 1e9
    res.update(unet_gflop_per_ecg=g_unet, encoders_gflop_per_ecg=g_enc,
               sdedit_gflop_per_ecg=per_ecg_flop / 1e9,
               floor_s_per_ecg_fp32=per_ecg_flop / FLOOR_FP32, floor_s_per_ecg_bf16=per_ecg_flop / FLOOR_BF16)

    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(0, 0.06, (n_ecg, 1, length)).astype(np.float32))
    y = torch.as_tensor(np.arange(n_ecg) % 2)
    t_base = median_time(lambda: baseline_generate(model, x[:1], y[:1], steps, schedule), repeats, label="base")
    t_fp32 = median_time(lambda: ours_generate(model, model.unet, x, y, steps, schedule), repeats,
                         label="fp32") / n_ecg
    bfm = bf16_unet(model.unet, engine="module")
    t_bf16m = median_time(lambda: ours_generate(model, bfm, x, y, steps, schedule), repeats, label="bf16m") / n_ecg
    bf = bf16_unet(model.unet)
    t_bf16 = median_time(lambda: ours_generate(model, bf, x, y, steps, schedule), repeats, label="bf16") / n_ecg
    c_bf16m = CPU_TIMES["bf16m"] / n_ecg
    res.update(ours_bf16_module_s_per_ecg=t_bf16m, cpu_s_per_ecg_bf16_module=c_bf16m,
               speedup_bf16_module_vs_baseline=t_base / t_bf16m,
               cpu_speedup_bf16_module_vs_baseline=CPU_TIMES["base"] / c_bf16m)
    if args.compile:
        cbf = bf16_unet(model.unet, compiled=True)
        t0 = time.perf_counter()
        ours_generate(model, cbf, x, y, steps, schedule)  # compiles
        res["compile_s"] = time.perf_counter() - t0
        t_comp = median_time(lambda: ours_generate(model, cbf, x, y, steps, schedule), repeats,
                             label="bf16c") / n_ecg
        c_comp = CPU_TIMES["bf16c"] / n_ecg
        res.update(ours_bf16_compiled_s_per_ecg=t_comp, cpu_s_per_ecg_bf16_compiled=c_comp,
                   speedup_bf16_compiled_vs_baseline=t_base / t_comp,
                   cpu_speedup_bf16_compiled_vs_baseline=CPU_TIMES["base"] / c_comp,
                   bf16_compiled_vs_fp32_max_abs_err=float(np.abs(
                       ours_generate(model, cbf, x, y, steps, schedule).numpy()
                       - ours_generate(model, model.unet, x, y, steps, schedule).numpy()).max()))
    c_base, c_fp32, c_bf16 = CPU_TIMES["base"], CPU_TIMES["fp32"] / n_ecg, CPU_TIMES["bf16"] / n_ecg
    res.update(cpu_s_per_ecg_baseline=c_base, cpu_s_per_ecg_fp32=c_fp32, cpu_s_per_ecg_bf16=c_bf16,
               cpu_speedup_fp32_vs_baseline=c_base / c_fp32, cpu_speedup_bf16_vs_baseline=c_base / c_bf16)
    out32 = ours_generate(model, model.unet, x, y, steps, schedule).numpy()
    out16 = ours_generate(model, bf, x, y, steps, schedule).numpy()
    scale = 50 / steps
    res.update(
        baseline_s_per_ecg=t_base, ours_fp32_s_per_ecg=t_fp32, ours_bf16_s_per_ecg=t_bf16,
        baseline_s_per_ecg_at_50_steps=t_base * scale, ours_fp32_s_per_ecg_at_50_steps=t_fp32 * scale,
        ours_bf16_s_per_ecg_at_50_steps=t_bf16 * scale,
        speedup_fp32_vs_baseline=t_base / t_fp32, speedup_bf16_vs_baseline=t_base / t_bf16,
        baseline_achieved_gflops=per_ecg_flop / t_base / 1e9, bf16_achieved_gflops=per_ecg_flop / t_bf16 / 1e9,
        bf16_vs_fp32_max_abs_err=float(np.abs(out16 - out32).max()),
        bf16_vs_fp32_output_range=float(out32.max() - out32.min()),
        bf16_vs_fp32_pearson_min=min(pearson(out16[i], out32[i]) for i in range(n_ecg)),
    )
    if not args.skip_train:
        step = train_step_seconds(model, 8, length, repeats)
        res.update(stage1_step_s_batch8=step, stage1_samples_per_s=8 / step,
                   stage1_step_cpu_s_batch8=CPU_TIMES["train"],
                   reference_stage1_samples_per_s=8 / REF_STAGE1_STEP_S)
    res["reference_sdedit_s_per_ecg"] = REF_SDEDIT_S
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
