"""SSSD-ECG benchmarks: S4D kernel, training and sampling throughput; the evaluation run on PTB-XL.

    python -m bench.sssd --quick                    # throughput, ~3 min on a 2-core CPU
    python -m bench.sssd                            # + paper-configuration forward pass
    python -m bench.sssd --evaluate --quick         # tiny AF-vs-SR training run on ptbxl500 + evaluators
                                                    # (resumes from --workdir if interrupted)

Throughput (one intra-op thread, median of repeats), each against a baseline measured in the same run:

1. the S4D kernel at the paper's layer size (H = 512, N = 64 -> 32 modes, L = 1000): our blocked
   Vandermonde product vs the direct ``exp(dtA * l)`` evaluation;
2. training steps (forward + backward + Adam) per second at tiny and small width, batch 8, 1000 samples;
3. sampling: the paper's 200-step ancestral sampler vs DDIM with 50 steps, and the ancestral sampler
   with the S4 kernels cached for the whole call vs recomputed at every network call;
4. the paper configuration's parameter count (instantiated) and, without --quick, its forward time.

``--evaluate`` trains SSSD-ECG (3 x 32 with --quick, else 4 x 64; AF vs SR labels) on PTB-XL folds 1-8 of ``--data``,
generates a class-balanced synthetic set and runs the evaluator plugins through the registry against
the held-out folds 9-10 (records the generator never saw):
``lead-consistency``, ``tstr`` (12-lead classifier input) and ``fidelity`` (heart-rate / RR
distributions). Figures are written to ``--out`` as markdown and JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

SMALL = dict(num_layers=4, res_channels=64, skip_channels=64, s4_state=32, label_embed_dim=32)
TINY = dict(num_layers=2, res_channels=16, skip_channels=16, s4_state=8, label_embed_dim=16)
EVAL_QUICK = dict(num_layers=3, res_channels=32, skip_channels=32, s4_state=16, label_embed_dim=32)


def _median_time(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _model(width: dict[str, int], classes: int = 2, length: int = 1000) -> Any:
    from augframe_sssd.model import SSSDConfig, SSSDECG

    torch.manual_seed(0)
    return SSSDECG(SSSDConfig(**width, num_classes=classes, length=length))


# ---- 1. kernel ----------------------------------------------------------------------------------
def bench_kernel(repeats: int) -> dict[str, float]:
    from augframe_sssd.s4d import S4DKernel

    torch.manual_seed(0)
    k = S4DKernel(512, d_state=64, channels=2)

    def direct() -> torch.Tensor:
        dt = k.log_dt.exp()[:, None]
        a = torch.complex(-k.log_a_real.exp(), k.a_imag)
        c = torch.view_as_complex(k.c) * (torch.exp(a * dt) - 1) / a
        return 2 * torch.einsum("chn,hnl->chl", c, torch.exp((a * dt)[:, :, None] * torch.arange(1000.0))).real

    with torch.no_grad():
        err = float((k(1000) - direct()).abs().max() / direct().abs().max())
        t_block = _median_time(lambda: k(1000), repeats)
        t_direct = _median_time(direct, repeats)
    return {"blocked_ms": 1e3 * t_block, "direct_ms": 1e3 * t_direct, "speedup": t_direct / t_block,
            "max_rel_error": err}


# ---- 2. training ---------------------------------------------------------------------------------
def bench_train(width: dict[str, int], repeats: int, batch: int = 8) -> dict[str, float]:
    from augframe.diffusion import NoiseSchedule
    from augframe.seeding import derive_seeds
    from augframe_sssd.diffusion import training_loss

    model = _model(width)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    x = torch.randn(batch, 8, 1000)
    y = torch.eye(2)[torch.arange(batch) % 2]
    schedule = NoiseSchedule.linear(200)
    counter = iter(range(10**9))

    def step() -> None:
        loss = training_loss(model, x, y, schedule, derive_seeds(0, batch, offset=batch * next(counter)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = _median_time(step, repeats)
    params = sum(p.numel() for p in model.parameters())
    return {"params": params, "step_s": t, "samples_per_s": batch / t}


# ---- 3. sampling ---------------------------------------------------------------------------------
def bench_sampling(width: dict[str, int], n: int, repeats: int) -> dict[str, float]:
    from augframe.diffusion import NoiseSchedule
    from augframe.seeding import derive_seeds
    from augframe_sssd.diffusion import sample_ancestral, sample_ddim

    model = _model(width).eval()
    schedule = NoiseSchedule.linear(200)
    y = torch.eye(2)[torch.arange(n) % 2]
    seeds = derive_seeds(0, n)
    shape = (8, 1000)

    def ancestral() -> None:
        with model.frozen_kernels(1000):
            sample_ancestral(model, y, seeds, shape, schedule)

    def ancestral_recomputed() -> None:
        sample_ancestral(model, y, seeds, shape, schedule)

    def ddim50() -> None:
        with model.frozen_kernels(1000):
            sample_ddim(model, y, seeds, shape, schedule, steps=50)

    t_anc = _median_time(ancestral, repeats)
    t_rec = _median_time(ancestral_recomputed, max(1, repeats // 2))
    t_ddim = _median_time(ddim50, repeats)
    return {"n": n, "ancestral200_s_per_ecg": t_anc / n, "ancestral200_recomputed_kernels_s_per_ecg": t_rec / n,
            "ddim50_s_per_ecg": t_ddim / n, "kernel_cache_speedup": t_rec / t_anc, "ddim50_speedup": t_anc / t_ddim}


# ---- 4. paper configuration ------------------------------------------------------------------------
def bench_paper(forward: bool) -> dict[str, float]:
    from augframe_sssd.generator import paper_parameter_count

    out: dict[str, float] = {"params": paper_parameter_count(71)}
    if forward:
        from augframe_sssd.model import SSSDConfig

        model = _model({k: getattr(SSSDConfig(), k) for k in ("num_layers", "res_channels", "skip_channels",
                                                                "s4_state", "label_embed_dim")}, classes=71).eval()
        x, t, y = torch.randn(1, 8, 1000), torch.tensor([100]), torch.zeros(1, 71)
        with torch.no_grad():
            out["forward_s_batch1"] = _median_time(lambda: model(x, t, y), 2)
            with model.frozen_kernels(1000):
                out["forward_cached_kernels_s_batch1"] = _median_time(lambda: model(x, t, y), 2)
        out["ancestral200_s_per_ecg_estimate"] = 200 * out["forward_cached_kernels_s_batch1"]
    return out


def throughput(quick: bool) -> dict[str, Any]:
    repeats = 3 if quick else 5
    res: dict[str, Any] = {"kernel": bench_kernel(repeats)}
    res["train_tiny"] = bench_train(TINY, repeats)
    res["train_small"] = bench_train(SMALL, repeats)
    res["sample_tiny"] = bench_sampling(TINY, 8, 1 if quick else 3)
    if not quick:
        res["sample_small"] = bench_sampling(SMALL, 8, 1)
    res["paper"] = bench_paper(forward=not quick)
    return res


def throughput_markdown(res: dict[str, Any], command: str) -> str:
    k, p = res["kernel"], res["paper"]
    lines = [
        "# SSSD-ECG benchmarks", "",
        f"- device: CPU ({platform.processor() or platform.machine()}), 1 intra-op thread; torch {torch.__version__}",
        f"- command: `{command}`; figures are medians of repeats on a 2-core machine shared with other jobs, "
        "so absolute times are noisy (ratios within one run are the robust figures). No GPU was available.",
        f"- paper configuration (36 layers, 256 residual/skip channels, S4D state 64, 71 labels): "
        f"**{p['params']:,} parameters** (instantiated)", "",
        "| measurement | ours | baseline (same run) | ratio |", "|---|---|---|---|",
        f"| S4D kernel H=512, N=64, L=1000 | blocked Vandermonde {k['blocked_ms']:.1f} ms | direct exp {k['direct_ms']:.1f} ms "
        f"| {k['speedup']:.1f}x (max rel. error {k['max_rel_error']:.1e}) |",
    ]
    s = res["sample_tiny"]
    lines.append(f"| sampling tiny, 8 ECGs, ancestral 200 | cached kernels {s['ancestral200_s_per_ecg']:.3f} s/ECG | "
                 f"recomputed per call {s['ancestral200_recomputed_kernels_s_per_ecg']:.3f} s/ECG | {s['kernel_cache_speedup']:.2f}x |")
    lines.append(f"| sampling tiny, DDIM 50 vs ancestral 200 | {s['ddim50_s_per_ecg']:.3f} s/ECG | "
                 f"{s['ancestral200_s_per_ecg']:.3f} s/ECG | {s['ddim50_speedup']:.2f}x |")
    if "sample_small" in res:
        s = res["sample_small"]
        lines.append(f"| sampling small, 8 ECGs, ancestral 200 | cached kernels {s['ancestral200_s_per_ecg']:.2f} s/ECG | "
                     f"recomputed {s['ancestral200_recomputed_kernels_s_per_ecg']:.2f} s/ECG | {s['kernel_cache_speedup']:.2f}x |")
        lines.append(f"| sampling small, DDIM 50 vs ancestral 200 | {s['ddim50_s_per_ecg']:.2f} s/ECG | "
                     f"{s['ancestral200_s_per_ecg']:.2f} s/ECG | {s['ddim50_speedup']:.2f}x |")
    lines += ["", "| training (batch 8, 8 x 1000 samples, Adam) | parameters | s/step | ECGs/s |", "|---|---|---|---|"]
    for name in ("train_tiny", "train_small"):
        t = res[name]
        lines.append(f"| {name[6:]} | {t['params']:,} | {t['step_s']:.3f} | {t['samples_per_s']:.1f} |")
    if "forward_s_batch1" in p:
        lines += ["", f"Paper configuration forward pass, batch 1: {p['forward_s_batch1']:.2f} s "
                      f"(kernels cached: {p['forward_cached_kernels_s_batch1']:.2f} s), i.e. about "
                      f"{p['ancestral200_s_per_ecg_estimate'] / 60:.1f} min per ECG for the 200-step sampler on this CPU."]
    lines += ["", "Widths: tiny = 2 layers x 16 channels, S4D state 8; small = 4 layers x 64 channels, state 32."]
    return "\n".join(lines) + "\n"


# ---- evaluation run ------------------------------------------------------------------------------
def evaluate(data: Path, quick: bool, workdir: Path, seed: int) -> dict[str, Any]:
    from augframe.plugins import Registry
    from augframe.protocols import EvalContext, GenerationRequest
    from augframe_sssd.ptbxl import load_ptbxl

    iterations = 500 if quick else 3000
    per_class = 40 if quick else 150
    width = EVAL_QUICK if quick else SMALL
    t0 = time.perf_counter()
    train, _ = load_ptbxl(data, labels="af-sr", folds=range(1, 9))
    real, _ = load_ptbxl(data, labels="af-sr", folds=(9, 10))  # never seen by the generator
    reg = Registry.discover()
    gen = reg.create("generator", "sssd-ecg", dict(width, device="auto", iterations=iterations, batch_size=8,
                                                  lr=1e-3, generate_batch_size=40, checkpoint_every=100))
    summary = gen.fit(train, seed=seed, workdir=workdir)
    t_fit = time.perf_counter() - t0
    labels = np.repeat(np.arange(2), per_class)
    t1 = time.perf_counter()
    cand = gen.generate(GenerationRequest.sample(labels, seed=seed + 1, class_names=gen.class_names,
                                                 sampler="ddim", steps=50))
    t_gen = time.perf_counter() - t1
    synthetic = cand.batch
    ctx = EvalContext(seed=seed, device="cpu", workdir=workdir / "eval")
    results = {}
    results["lead-consistency"] = reg.create("evaluator", "lead-consistency", {}).evaluate(real, synthetic, context=ctx)
    results["fidelity"] = reg.create("evaluator", "fidelity", {"judge": None}).evaluate(real, synthetic, context=ctx)
    results["tstr"] = reg.create("evaluator", "tstr", {
        "classifier": "ecg-crnn", "classifier_params": {"width": 0.25}, "max_epochs": 8 if quick else 20,
        "patience": 4, "batch_size": 16}).evaluate(real, synthetic, context=ctx)
    counts = {name: int((train.labels == i).sum()) for i, name in enumerate(train.class_names)}
    real_counts = {name: int((real.labels == i).sum()) for i, name in enumerate(real.class_names)}
    return {"iterations": summary["iterations"], "losses": summary["losses"], "fit_s": t_fit, "generate_s": t_gen,
            "train_counts": counts, "real_counts": real_counts, "n_real": len(real), "n_synthetic": len(synthetic),
            "results": {k: v.to_dict() for k, v in results.items()}, "quick": quick, "seed": seed,
            "width": width}


def denoising_check(checkpoint: Path, data: Path, seed: int = 0) -> str:
    """One-step denoising of held-out real ECGs (fold 9): correlation of the model's x0 estimate with the
    truth vs the naive estimate x_t / sqrt(alpha-bar), per diffusion step. Shows what a model has learnt
    even when it is too undertrained to sample ECGs from pure noise."""
    from augframe.seeding import derive_seeds, randn
    from augframe_sssd.generator import SSSDECGGenerator
    from augframe_sssd.leads import INDEPENDENT_LEADS
    from augframe_sssd.ptbxl import load_ptbxl

    gen = SSSDECGGenerator(checkpoint=str(checkpoint), device="cpu")
    real, _ = load_ptbxl(data, labels="af-sr", folds=(9,), limit=16)
    pos = [real.leads.index(name) for name in INDEPENDENT_LEADS]
    x0 = torch.from_numpy(real.numpy()[:, pos] / gen.signal_scale)
    y = torch.from_numpy(gen.label_matrix(real.labels, "labels"))
    ab = gen._schedule().alphas_cumprod.float()
    corr = lambda u: float(np.corrcoef(u.flatten().numpy(), x0.flatten().numpy())[0, 1])  # noqa: E731
    lines = ["| step t | alpha-bar | eps MSE | corr(x0 estimate, x0) | corr(naive x_t/sqrt(ab), x0) |",
             "|---|---|---|---|---|"]
    for t in (5, 20, 50, 100, 150, gen.spec.diffusion_steps - 1):
        eps = randn(derive_seeds(seed, len(x0)), tuple(x0.shape[1:]), stream=t)
        a = ab[t]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        with torch.no_grad():
            eh = gen.model(xt, torch.full((len(x0),), t), y)
        x0h = (xt - (1 - a).sqrt() * eh) / a.sqrt()
        lines.append(f"| {t} | {float(a):.3f} | {float(((eh - eps) ** 2).mean()):.3f} | {corr(x0h):.3f} | "
                     f"{corr(xt / a.sqrt()):.3f} |")
    return "\n".join(lines) + "\n"


def evaluation_markdown(ev: dict[str, Any], command: str) -> str:
    res = ev["results"]
    lines = ["# SSSD-ECG evaluation on ptbxl500 (tiny CPU scale)", "",
             f"- command: `{command}`; torch {torch.__version__}, CPU, shared 2-core machine",
             f"- scale: width {ev['width']}, {ev['iterations']} iterations at batch 8 on PTB-XL folds 1-8 "
             f"({ev['train_counts']}), {ev['n_synthetic']} synthetic ECGs (DDIM 50), "
             f"{ev['n_real']} real ECGs of the held-out folds 9-10 ({ev['real_counts']}) for the evaluators; fit {ev['fit_s']:.0f} s, generation {ev['generate_s']:.0f} s",
             f"- loss (every 50 steps): {[round(l, 3) for _, l in ev['losses']]}", ""]
    for name, r in res.items():
        lines.append(f"## {name}")
        if r.get("scale"):
            lines.append(f"scale: {r['scale']}")
        lines.append("")
        for k, v in sorted(r["metrics"].items()):
            lines.append(f"- {k}: {v:.4g}" if isinstance(v, (int, float)) else f"- {k}: {v}")
        for note in r.get("notes", []):
            lines.append(f"- note: {note}")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--evaluate", action="store_true", help="training + evaluator run on PTB-XL instead of throughput")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/ptbxl500")
    ap.add_argument("--workdir", type=Path, default=Path("runs/bench-sssd"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="markdown file; a .json beside it holds the raw figures")
    ap.add_argument("--denoise-check", type=Path, default=None, metavar="CHECKPOINT",
                    help="print the one-step denoising table of a trained sssd-ecg checkpoint and exit")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.denoise_check is not None:
        print(denoising_check(args.denoise_check, args.data, args.seed))
        return
    command = "python -m bench.sssd" + (" --evaluate" if args.evaluate else "") + (" --quick" if args.quick else "")
    if args.evaluate:
        res = evaluate(args.data, args.quick, args.workdir, args.seed)
        text = evaluation_markdown(res, command)
    else:
        res = throughput(args.quick)
        text = throughput_markdown(res, command)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
