"""Training and inference throughput of the evaluators' classifiers at paper width.

    python -m bench.evaluators [--quick] [--device auto] [--batch 32] [--steps 4] [--repeats 3] [--width 1.0]
                               [--skip-crnn]

Measures AFibResLSTM (8.3 M parameters) training steps (forward, focal loss, backward, Adam,
clipping, as in the three-way protocol) and eval-mode inference in ECGs per second, with
torch-ecg's ECG_CRNN at its preset width measured in the same run as the baseline, and prints the
ratio. Median of ``--repeats`` timed repeats after one warm-up step. Uses CUDA (bf16 autocast) when
present. AFibResLSTM is also measured with ``attention_dropout = 0`` (the CPU-scale recipes' setting)
beside the reference's 0.3, as a ratio in the same run; rates are per wall second and per CPU second
(the latter is less hit by other jobs on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import torch


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _measure(model: torch.nn.Module, device: str, batch: int, steps: int, repeats: int, length: int) -> dict:
    from augframe.training import autocast
    from augframe_afib.focal import FocalLoss

    model = model.to(device)
    gen = torch.Generator().manual_seed(0)
    x = (0.2 * torch.randn(batch, 1, length, generator=gen)).to(device)
    y = torch.randint(0, 2, (batch,), generator=gen).to(device)
    loss_fn = FocalLoss().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)

    def train_steps(n: int) -> None:
        model.train()
        for _ in range(n):
            with autocast(device):
                logits = model(x)
            loss = loss_fn(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

    @torch.no_grad()
    def infer(n: int) -> None:
        model.eval()
        for _ in range(n):
            with autocast(device):
                model(x)

    out = {}
    for name, fn in (("train", train_steps), ("infer", infer)):
        fn(1)
        _sync(device)
        rates, cpu_rates = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            fn(steps)
            _sync(device)
            rates.append(batch * steps / (time.perf_counter() - t0))
            cpu_rates.append(batch * steps / max(time.process_time() - c0, 1e-9))
        out[name] = statistics.median(rates)
        out[f"{name}_per_cpu_s"] = statistics.median(cpu_rates)
        out[f"{name}_all"] = rates
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="batch 8, 2 steps, 3 repeats")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--length", type=int, default=2500, help="samples per ECG (2500 = 10 s at 250 Hz)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--width", type=float, default=1.0, help="AFibResLSTM channel multiplier (1.0 = paper)")
    ap.add_argument("--skip-crnn", action="store_true", help="leave out the ECG_CRNN baseline")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.repeats = 8, 2, 3
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    from augframe.training import resolve_device
    from augframe_afib.classifiers import make_afib_reslstm, make_ecg_crnn

    device = resolve_device(args.device)
    w = args.width
    res = {
        f"afib-reslstm (width {w:g})": _measure(make_afib_reslstm(width=w), device, args.batch, args.steps,
                                               args.repeats, args.length),
        f"afib-reslstm (width {w:g}, attention_dropout 0)": _measure(
            make_afib_reslstm(width=w, attention_dropout=0.0), device, args.batch, args.steps, args.repeats,
            args.length),
    }
    if not args.skip_crnn:
        res["ecg-crnn (torch-ecg preset, baseline)"] = _measure(make_ecg_crnn(), device, args.batch, args.steps,
                                                                args.repeats, args.length)
    names = list(res)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"{args.steps} steps x {args.repeats} repeats, {args.length} samples")
    for n in names:
        print(f"  {n:48s} train {res[n]['train']:8.2f} ECG/s ({res[n]['train_per_cpu_s']:8.2f} per CPU-s)   "
              f"inference {res[n]['infer']:8.2f} ECG/s")
    for other in names[1:]:
        for k in ("train", "train_per_cpu_s", "infer"):
            print(f"  ratio {other} / {names[0]}, {k}: {res[other][k] / res[names[0]][k]:.3f}")
    print(json.dumps({"device": device, "torch": torch.__version__, "args": vars(args), "results": res}))


if __name__ == "__main__":
    main()
