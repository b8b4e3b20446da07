"""DiffECG on real CinC 2017 ECGs: training, imputation, forecasting, generation, throughput.

    python -m bench.diffecg            # full run (~15 min of training on a CPU, then evaluation)
    python -m bench.diffecg --quick    # minutes: small data, short training, few test windows

Held out by record: windows (and the beats cut from them) of 20 % of the records are the test
set. Every figure is computed in one run, with the baselines (linear interpolation, previous beat
repeated on the R-peak grid) on the same test windows and the same masks. Errors are in mV.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from augframe.protocols import GenerationRequest
from augframe.signals import ECGBatch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("AUGFRAME_SHARED", ROOT.parent / "shared")) / "data" / "cinc2017"


def split_by_record(batch: ECGBatch, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    records = np.unique(batch.meta["record"])
    rng = np.random.default_rng(seed)
    test_rec = set(rng.choice(records, size=max(1, int(round(test_fraction * len(records)))), replace=False))
    is_test = np.array([r in test_rec for r in batch.meta["record"]])
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def balanced(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to n indices, half per class where possible, seeded."""
    rng = np.random.default_rng(seed)
    out = []
    classes = np.unique(labels[labels >= 0])
    for c in classes:
        idx = np.flatnonzero(labels == c)
        out.append(rng.choice(idx, size=min(len(idx), n // len(classes)), replace=False))
    return np.sort(np.concatenate(out))


def complete(gen, batch: ECGBatch, mask: np.ndarray, seed: int, steps: int) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = gen.generate(GenerationRequest.complete(batch, mask, seed=seed, steps=steps)).batch.numpy()
    return out, time.perf_counter() - t0


def eval_completion(gen, test: ECGBatch, masks: dict[str, np.ndarray], draws: int, steps: int, beats: bool,
                    forecast_keys: set[str]) -> list[dict]:
    from augframe_diffecg.baselines import beat_repeat, linear_interpolation, masked_errors, previous_beat

    x = test.numpy()
    labels = test.labels
    rows = []
    for key, mask in masks.items():
        preds = {}
        t0 = time.perf_counter()
        preds["linear interpolation"] = linear_interpolation(x, mask)
        t_lin = time.perf_counter() - t0
        t0 = time.perf_counter()
        if beats:
            preds["previous beat"], fb = previous_beat(x, mask, test.meta["window"], test.meta["beat"])
        else:
            preds["previous beat (R-aligned)"], fb = beat_repeat(x, mask, test.fs, forecast=key in forecast_keys)
        t_beat = time.perf_counter() - t0
        samples, t_diff = [], 0.0
        for d in range(draws):
            y, dt = complete(gen, test, mask, seed=1000 + d, steps=steps)
            samples.append(y)
            t_diff += dt
        preds["DiffECG, 1 draw"] = samples[0]
        if draws > 1:
            preds[f"DiffECG, mean of {draws} draws"] = np.mean(samples, axis=0)
        for name, pred in preds.items():
            row = {"task": key, "method": name, **masked_errors(pred, x, mask)}
            for c, cname in enumerate(test.class_names):
                sel = labels == c
                if sel.any():
                    row[f"mae_{cname}"] = masked_errors(pred[sel], x[sel], mask[sel])["mae"]
            rows.append(row)
        rows.append({"task": key, "method": "_timing", "linear_s": t_lin, "beat_s": t_beat,
                     "diffecg_s_per_draw": t_diff / draws, "n": len(x), "beat_fallbacks": fb})
        print(json.dumps(rows[-2:]), flush=True)
    return rows


def generation_mae(gen_x: np.ndarray, gen_y: np.ndarray, ref_x: np.ndarray, ref_y: np.ndarray) -> float:
    """Mean over generated beats of the MAE to the closest (in MAE) reference beat of the same class."""
    out = []
    for c in np.unique(gen_y):
        g = torch.from_numpy(gen_x[gen_y == c].reshape((gen_y == c).sum(), -1))
        r = torch.from_numpy(ref_x[ref_y == c].reshape((ref_y == c).sum(), -1))
        if len(r) == 0:
            continue
        d = torch.cdist(g, r, p=1) / g.shape[1]
        out.append(d.min(dim=1).values.numpy())
    return float(np.concatenate(out).mean())


def train_judge(train: ECGBatch, test: ECGBatch, seconds: float, seed: int) -> tuple[object | None, dict]:
    """The registry's "afib-reslstm" at reduced width, trained briefly on the real training windows."""
    from augframe.plugins import Registry

    reg = Registry.discover()
    if "afib-reslstm" not in reg.names("classifier"):
        return None, {"judge": "afib-reslstm not in the registry"}
    width = 0.25
    judge = reg.create("classifier", "afib-reslstm", {"width": width, "class_names": list(train.class_names), "seed": seed})
    opt = torch.optim.Adam(judge.parameters(), lr=1e-3)
    x, y = train.numpy(), train.labels
    w = torch.tensor(len(y) / (2.0 * np.bincount(y, minlength=2)), dtype=torch.float32)  # class balance
    rng = np.random.default_rng(seed)
    t0, steps = time.perf_counter(), 0
    judge.train()
    while time.perf_counter() - t0 < seconds:
        idx = rng.integers(0, len(y), size=32)
        loss = torch.nn.functional.cross_entropy(judge(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]), weight=w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    judge.eval()
    pred = predict(judge, test.numpy())
    bal = np.mean([np.mean(pred[test.labels == c] == c) for c in range(len(test.class_names))])
    return judge, {"judge": f"afib-reslstm width {width}", "judge_steps": steps, "judge_train_s": round(seconds),
                   "judge_real_test_balanced_acc": float(bal), "judge_real_test_n": int(len(pred))}


@torch.no_grad()
def predict(judge, x: np.ndarray) -> np.ndarray:
    return np.concatenate([judge(torch.from_numpy(x[i:i + 64])).argmax(1).numpy() for i in range(0, len(x), 64)])


def plausibility(candidates: ECGBatch) -> dict:
    from augframe.plugins import Registry

    reg = Registry.discover()
    if "plausibility" not in reg.names("filter"):
        return {"validator": "no 'plausibility' filter in the registry (plugin not loadable in this run)"}
    flt = reg.create("filter", "plausibility", {})
    res = flt.score(candidates)
    return {"validator": "plausibility", "acceptance": float(np.mean(res.accept)), "mean_score": float(np.mean(res.scores))}


def throughput(gen, batch: ECGBatch, steps: int, repeats: int = 3) -> dict:
    mask = np.zeros(batch.signals.shape, dtype=bool)
    mask[..., : batch.n_samples // 2] = True
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        gen.generate(GenerationRequest.complete(batch, mask, seed=r, steps=steps))
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    return {"n": len(batch), "steps": steps, "median_s": med, "ecgs_per_s": len(batch) / med}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "diffecg")
    p.add_argument("--per-class", type=int, default=500, help="CinC records per class (N, A)")
    p.add_argument("--beat-minutes", type=float, default=5.0)
    p.add_argument("--window-minutes", type=float, default=10.0)
    p.add_argument("--judge-minutes", type=float, default=3.0)
    p.add_argument("--test-windows", type=int, default=48)
    p.add_argument("--test-beats", type=int, default=256)
    p.add_argument("--steps", type=int, default=25, help="DDIM steps for completion")
    p.add_argument("--draws", type=int, default=2)
    p.add_argument("--gen-per-class", type=int, default=24)
    p.add_argument("--width", type=int, default=16, help="U-Net base width of both models")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reuse", action="store_true", help="load checkpoints from --out instead of training")
    p.add_argument("--render", type=Path, help="only print the markdown tables of a results.json")
    a = p.parse_args(argv)
    if a.render is not None:
        print(render(json.loads(a.render.read_text())))
        return
    if a.quick:
        a.per_class, a.beat_minutes, a.window_minutes, a.judge_minutes = 30, 0.5, 0.5, 0.3
        a.test_windows, a.test_beats, a.steps, a.draws, a.gen_per_class = 8, 32, 5, 2, 4
    torch.set_num_threads(a.threads)
    from augframe.data import cinc2017_windows
    from augframe_diffecg.beats import cut_beats
    from augframe_diffecg.generator import DiffECGGenerator
    from augframe_diffecg.masks import forecast_mask, long_gap_mask

    a.out.mkdir(parents=True, exist_ok=True)
    res: dict = {"args": {k: str(v) for k, v in vars(a).items()}, "torch": torch.__version__,
                 "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads={a.threads}"}
    t0 = time.perf_counter()
    windows = cinc2017_windows(a.data, classes=("N", "A"), limit_per_class=a.per_class, normalise=None, seed=a.seed)
    tr_idx, te_idx = split_by_record(windows, 0.2, a.seed)
    train_w, test_w_all = windows.select(tr_idx), windows.select(te_idx)
    train_b, test_b_all = cut_beats(train_w), cut_beats(test_w_all)
    res["data"] = {"windows_train": len(train_w), "windows_test": len(test_w_all), "beats_train": len(train_b),
                   "beats_test": len(test_b_all), "records": int(len(np.unique(windows.meta["record"]))),
                   "load_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(res["data"]), flush=True)

    models = {
        "beats": (train_b, dict(width=a.width, mults=(1, 2, 4), blocks=1, n_fft=32, hop=4, train_batch_size=32),
                  a.beat_minutes),
        "windows": (train_w, dict(width=a.width, mults=(1, 2, 2, 4), blocks=1, n_fft=64, hop=16, train_batch_size=8),
                    a.window_minutes),
    }
    gens = {}
    for name, (data, arch, minutes) in models.items():
        ckpt = a.out / name / "diffecg.safetensors"
        if a.reuse and ckpt.is_file():
            gens[name] = DiffECGGenerator(checkpoint=str(ckpt), device=a.device)
            res[f"train_{name}"] = json.loads((a.out / name / "summary.json").read_text())
            continue
        gen = DiffECGGenerator(**arch, train_steps=10**6, time_budget_s=60 * minutes, device=a.device)
        t1 = time.perf_counter()
        gen.fit(data, seed=a.seed)
        wall = time.perf_counter() - t1
        gen.save(ckpt)
        log = gen.train_log
        params = sum(p.numel() for p in gen.model.parameters())
        summary = {"steps": log[-1]["step"], "batch": arch["train_batch_size"], "params": params,
                   "wall_s": round(wall, 1), "steps_per_s": log[-1]["step"] / log[-1]["elapsed_s"],
                   "windows_per_s": log[-1]["step"] * arch["train_batch_size"] / log[-1]["elapsed_s"],
                   "loss_first": log[0]["loss"], "loss_last": log[-1]["loss"], "arch": {k: str(v) for k, v in arch.items()}}
        (a.out / name / "summary.json").write_text(json.dumps(summary))
        res[f"train_{name}"] = summary
        gens[name] = gen
        print(name, json.dumps(summary), flush=True)

    # ---- imputation and forecasting ---------------------------------------------------------
    te_w = test_w_all.select(balanced(test_w_all.labels, a.test_windows, a.seed))
    te_b = test_b_all.select(balanced(test_b_all.labels, a.test_beats, a.seed))
    shp_w, shp_b = te_w.signals.shape, te_b.signals.shape
    masks_w = {f"gap {int(f * 100)} %": long_gap_mask(shp_w, f, seed=a.seed + k) for k, f in enumerate((0.1, 0.3, 0.5))}
    masks_w.update({f"forecast last {h} s": forecast_mask(shp_w, int(h * te_w.fs)) for h in (1, 2)})
    masks_b = {f"gap {int(f * 100)} %": long_gap_mask(shp_b, f, seed=a.seed + k) for k, f in enumerate((0.1, 0.3, 0.5))}
    # the previous-beat baseline needs each test beat's neighbour: keep the full test beat set for it
    res["windows"] = eval_completion(gens["windows"], te_w, masks_w, a.draws, a.steps, beats=False,
                                     forecast_keys={k for k in masks_w if k.startswith("forecast")})
    res["beats"] = eval_completion_beats(gens["beats"], test_b_all, te_b, masks_b, a, eval_completion)

    # ---- generation -------------------------------------------------------------------------
    judge, res["judge"] = train_judge(train_w, test_w_all, 60 * a.judge_minutes, a.seed)
    gen_res = {}
    for name in ("windows", "beats"):
        g = gens[name]
        labels = np.repeat(np.arange(len(g.config.class_names)), a.gen_per_class)
        t1 = time.perf_counter()
        cand = g.generate(GenerationRequest.sample(labels, seed=a.seed + 77, class_names=g.config.class_names,
                                                   steps=50))
        entry = {"n": len(cand), "steps": 50, "wall_s": round(time.perf_counter() - t1, 1),
                 "std_generated": float(cand.batch.numpy().std())}
        if name == "windows":
            entry.update(plausibility(cand.batch))
            entry["std_real_test"] = float(test_w_all.numpy().std())
            if judge is not None:
                pred = predict(judge, cand.batch.numpy())
                entry["judge_agreement"] = float(np.mean(pred == labels))
                entry.update({f"judge_agreement_{c}": float(np.mean(pred[labels == i] == i))
                              for i, c in enumerate(g.config.class_names)})
                real = test_w_all.select(balanced(test_w_all.labels, len(labels), a.seed + 1))
                entry["judge_agreement_real_same_n"] = float(np.mean(predict(judge, real.numpy()) == real.labels))
                rv = plausibility(real)
                entry["real_acceptance"] = rv.get("acceptance")
        else:
            ref = test_b_all
            entry["generation_mae"] = generation_mae(cand.batch.numpy(), labels, ref.numpy(), ref.labels)
            # reference value: real training beats scored the same way against the test beats
            real = train_b.select(balanced(train_b.labels, len(labels), a.seed + 2))
            entry["generation_mae_real_train_beats"] = generation_mae(real.numpy(), real.labels, ref.numpy(), ref.labels)
            noise = np.random.default_rng(0).normal(0, train_b.numpy().std(), size=cand.batch.signals.shape).astype(np.float32)
            entry["generation_mae_gaussian_noise"] = generation_mae(noise, labels, ref.numpy(), ref.labels)
            entry["std_real_test"] = float(ref.numpy().std())
        gen_res[name] = entry
        print(name, json.dumps(entry), flush=True)
    res["generation"] = gen_res

    # ---- throughput --------------------------------------------------------------------------
    res["throughput"] = {
        "windows_ddim50": throughput(gens["windows"], te_w.select(np.arange(min(8, len(te_w)))), 50, 2),
        "beats_ddim50": throughput(gens["beats"], te_b.select(np.arange(min(64, len(te_b)))), 50, 2),
    }
    res["total_s"] = round(time.perf_counter() - t0, 1)
    (a.out / "results.json").write_text(json.dumps(res, indent=1))
    (a.out / "results.md").write_text(render(res))
    print(json.dumps(res["throughput"]))
    print(f"wrote {a.out / 'results.json'} in {res['total_s']} s")


def _fmt(v: float) -> str:
    return f"{v:.4f}"


def render(res: dict) -> str:
    """Markdown tables of every figure in ``res`` (what .notes/bench-diffecg.md and docs/diffecg.md show)."""
    out = []
    d = res["data"]
    out.append(f"Data: {d['records']} CinC 2017 records (N and A), split 80/20 by record: "
               f"{d['windows_train']} train / {d['windows_test']} test windows, "
               f"{d['beats_train']} train / {d['beats_test']} test beats.\n")
    out.append("| model | params | optimiser steps x batch | wall | steps/s | ECGs/s | loss first -> last 25 steps |")
    out.append("|---|---:|---:|---:|---:|---:|---|")
    for name in ("beats", "windows"):
        t = res[f"train_{name}"]
        out.append(f"| {name} (width {t['arch']['width']}, mults {t['arch']['mults']}) | {t['params']:,} | "
                   f"{t['steps']} x {t['batch']} | {t['wall_s']:.0f} s | {t['steps_per_s']:.2f} | "
                   f"{t['windows_per_s']:.1f} | {t['loss_first']:.3f} -> {t['loss_last']:.3f} |")
    for part, title in (("windows", "10 s windows"), ("beats", "heartbeats (192 samples)")):
        rows = [r for r in res[part] if r["method"] != "_timing"]
        classes = [k[4:] for k in rows[0] if k.startswith("mae_")]
        out.append(f"\n**{title}**: MAE / RMSE in mV over the unknown samples "
                   f"(n = {[r for r in res[part] if r['method'] == '_timing'][0]['n']} test items per task)\n")
        out.append("| task | method | MAE | RMSE | " + " | ".join(f"MAE {c}" for c in classes) + " | MAE vs best baseline |")
        out.append("|---|---|---:|---:|" + "---:|" * len(classes) + "---:|")
        for task in dict.fromkeys(r["task"] for r in rows):
            trs = [r for r in rows if r["task"] == task]
            best = min(r["mae"] for r in trs if not r["method"].startswith("DiffECG"))
            for r in trs:
                ratio = f"{r['mae'] / best:.2f}x" if r["method"].startswith("DiffECG") else ""
                out.append(f"| {task} | {r['method']} | {_fmt(r['mae'])} | {_fmt(r['rmse'])} | "
                           + " | ".join(_fmt(r[f'mae_{c}']) for c in classes) + f" | {ratio} |")
    g = res["generation"]
    out.append("\n**Generation** (DDIM 50 steps, class-conditional, equal numbers per class)\n")
    w = g["windows"]
    out.append("| windows | value |")
    out.append("|---|---:|")
    for key in ("n", "acceptance", "real_acceptance", "mean_score", "judge_agreement", "judge_agreement_N",
                "judge_agreement_A", "judge_agreement_real_same_n", "std_generated", "std_real_test"):
        if key in w:
            out.append(f"| {key} | {w[key] if isinstance(w[key], str) else round(w[key], 4)} |")
    for k, v in res.get("judge", {}).items():
        out.append(f"| {k} | {v if isinstance(v, str) else round(v, 4)} |")
    b = g["beats"]
    out.append("\n| beats | value |")
    out.append("|---|---:|")
    for key in ("n", "generation_mae", "generation_mae_real_train_beats", "generation_mae_gaussian_noise",
                "std_generated", "std_real_test"):
        out.append(f"| {key} | {round(b[key], 4)} |")
    out.append("\n**Sampling throughput** (DDIM 50 steps, half of each ECG known, median of repeats)\n")
    out.append("| input | batch | median s | ECGs/s |")
    out.append("|---|---:|---:|---:|")
    for k, v in res["throughput"].items():
        out.append(f"| {k} | {v['n']} | {v['median_s']:.1f} | {v['ecgs_per_s']:.3f} |")
    tim = [r for r in res["windows"] if r["method"] == "_timing"]
    out.append("\n| completion wall time per call (windows) | linear | R-aligned beat repeat | DiffECG 1 draw | ratio DiffECG / beat repeat |")
    out.append("|---|---:|---:|---:|---:|")
    for r in tim:
        out.append(f"| {r['task']} (n={r['n']}) | {r['linear_s']:.3f} s | {r['beat_s']:.3f} s | "
                   f"{r['diffecg_s_per_draw']:.1f} s | {r['diffecg_s_per_draw'] / r['beat_s']:.0f}x |")
    return "\n".join(out) + "\n"


def eval_completion_beats(gen, all_beats: ECGBatch, te: ECGBatch, masks: dict, a, fn) -> list[dict]:
    """Beat imputation: the test subset, with the previous-beat baseline looked up in all test beats."""
    from augframe_diffecg.baselines import linear_interpolation, masked_errors

    x = te.numpy()
    # previous beat of each selected beat, from the full test set (same window, ordinal - 1, else + 1)
    key = {(int(w), int(o)): i for i, (w, o) in enumerate(zip(all_beats.meta["window"], all_beats.meta["beat"]))}
    nb = np.array([key.get((int(w), int(o) - 1), key.get((int(w), int(o) + 1), -1))
                   for w, o in zip(te.meta["window"], te.meta["beat"])])
    rows = []
    for name, mask in masks.items():
        preds = {"linear interpolation": linear_interpolation(x, mask)}
        prev = all_beats.numpy()[np.maximum(nb, 0)]
        preds["previous beat"] = np.where(mask | (nb < 0)[:, None, None], np.where(mask, x, preds["linear interpolation"]), prev)
        samples, t_diff = [], 0.0
        for d in range(max(a.draws, 4)):
            y, dt = complete(gen, te, mask, seed=1000 + d, steps=50)
            samples.append(y)
            t_diff += dt
        preds["DiffECG, 1 draw"] = samples[0]
        preds[f"DiffECG, mean of {len(samples)} draws"] = np.mean(samples, axis=0)
        for m, pred in preds.items():
            row = {"task": name, "method": m, **masked_errors(pred, x, mask)}
            for c, cname in enumerate(te.class_names):
                sel = te.labels == c
                row[f"mae_{cname}"] = masked_errors(pred[sel], x[sel], mask[sel])["mae"]
            rows.append(row)
        rows.append({"task": name, "method": "_timing", "diffecg_s_per_draw": t_diff / len(samples), "n": len(x),
                     "no_neighbour": int((nb < 0).sum())})
        print(json.dumps(rows[-3:]), flush=True)
    return rows


if __name__ == "__main__":
    main()
