"""DiffECG on real CinC 2017 ECGs: training, imputation, forecasting, generation, throughput.

    python -m bench.diffecg                      # full run: trains (resumably) in runs/diffecg, then evaluates
    python -m bench.diffecg --eval-on val        # the same models on validation records (choosing settings)
    python -m bench.diffecg --parts beats        # one model only
    python -m bench.diffecg --quick              # a smoke run: tiny data, a few steps
    python -m bench.diffecg --render runs/diffecg/results_test.json
    python -m bench.diffecg --prior linear --out runs/diffecg_r3 ...   # gaps filled by linear interpolation in C1,
                                                                        # the chain diffuses the residual
    python -m bench.diffecg --parts pairs ...    # beats with their neighbour beat as known context
    python -m bench.diffecg ... --draws 32 --nested-draws 8,16 --save-samples   # medians of 8/16/32 from one run
    python -m bench.diffecg --ci runs/diffecg_r3/samples_test_beats_gap10pct.npz   # record-bootstrap intervals

Training writes runs/diffecg/<beats|windows>/ (train state every 200 steps, weights, summary); a
later run with the same settings loads the finished model instead of retraining, and a stopped
one resumes. Validation records are 10 % of the training records, never trained on.

Held out by record: windows (and the beats cut from them) of 20 % of the records are the test
set. Every figure is computed in one run, with the baselines (linear interpolation, previous beat
repeated on the R-peak grid) on the same test windows and the same masks. Errors are in mV.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
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


def complete_draws(gen, batch: ECGBatch, mask: np.ndarray, seed: int, steps: int, draws: int) -> tuple[np.ndarray, float]:
    """All ``draws`` samples ``[n, draws, leads, samples]`` of each completion, in one batched call.

    The rows and seeds are exactly those the plugin's ``draws=K`` option samples (draw 0 is the
    plain single-draw output), so the median/mean over axis 1 is what ``draws=K, aggregate=...``
    returns; sampling them once gives the 1-draw, median and mean figures from the same draws.
    """
    from augframe_diffecg.generator import draw_seeds

    req = GenerationRequest.complete(batch, mask, seed=seed)
    rows = np.repeat(np.arange(len(batch)), draws)
    wide = GenerationRequest("complete", req.labels[rows], draw_seeds(req.seeds, draws), sources=batch.select(rows),
                             mask=mask[rows], class_names=batch.class_names, options={"steps": steps, "draws": 1})
    t0 = time.perf_counter()
    out = gen.generate(wide).batch.numpy()
    return out.reshape(len(batch), draws, *out.shape[1:]), time.perf_counter() - t0


def diffecg_predictions(samples: np.ndarray, nested: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """1 draw, and the median and mean of all draws (the point estimates).

    ``nested``: also the median of the first k draws for each k listed (k < all). The plugin's
    per-draw seeds are prefix-consistent (draw j's seed does not depend on K), so the first k of
    K draws are exactly what ``draws=k`` samples: one run gives the figures for every k.
    """
    k = samples.shape[1]
    preds = {"DiffECG, 1 draw": samples[:, 0]}
    for j in sorted(set(nested)):
        if 1 < j < k:
            preds[f"DiffECG, median of {j} draws"] = np.median(samples[:, :j], axis=1)
    if k > 1:
        preds[f"DiffECG, median of {k} draws"] = np.median(samples, axis=1)
        preds[f"DiffECG, mean of {k} draws"] = samples.mean(axis=1)
    return preds


def score_rows(task: str, preds: dict[str, np.ndarray], x: np.ndarray, mask: np.ndarray, labels: np.ndarray,
               class_names) -> list[dict]:
    from augframe_diffecg.baselines import masked_errors

    rows = []
    for name, pred in preds.items():
        row = {"task": task, "method": name, **masked_errors(pred, x, mask)}
        for c, cname in enumerate(class_names):
            sel = labels == c
            if sel.any():
                row[f"mae_{cname}"] = masked_errors(pred[sel], x[sel], mask[sel])["mae"]
        rows.append(row)
    return rows


def eval_completion(gen, test: ECGBatch, masks: dict[str, np.ndarray], draws: int, steps: int,
                    forecast_keys: set[str], seed: int, nested: tuple[int, ...] = (),
                    save_to: Path | None = None) -> list[dict]:
    """Windows: both baselines and DiffECG (1 draw, median and mean of ``draws``) on the same masks."""
    from augframe_diffecg.baselines import beat_repeat, linear_interpolation

    x = test.numpy()
    rows = []
    for key, mask in masks.items():
        preds = {}
        t0 = time.perf_counter()
        preds["linear interpolation"] = linear_interpolation(x, mask)
        t_lin = time.perf_counter() - t0
        t0 = time.perf_counter()
        preds["previous beat (R-aligned)"], fb = beat_repeat(x, mask, test.fs, forecast=key in forecast_keys)
        t_beat = time.perf_counter() - t0
        samples, t_diff = complete_draws(gen, test, mask, seed=seed + 1000, steps=steps, draws=draws)
        save_samples(save_to, key, samples, x, mask, test.labels, preds, test.meta["record"])
        preds.update(diffecg_predictions(samples, nested))
        rows += score_rows(key, preds, x, mask, test.labels, test.class_names)
        rows.append({"task": key, "method": "_timing", "linear_s": t_lin, "beat_s": t_beat,
                     "diffecg_s_per_draw": t_diff / draws, "draws": draws, "steps": steps, "n": len(x),
                     "beat_fallbacks": fb})
        print(json.dumps(rows[-(len(preds) + 1):]), flush=True)
    return rows


def save_samples(prefix: Path | None, task: str, samples: np.ndarray, x: np.ndarray, mask: np.ndarray,
                 labels: np.ndarray, baselines: dict[str, np.ndarray], records: np.ndarray) -> None:
    """Keep every draw, the truth, the mask, the baselines and each item's record (for per-item
    errors, the record-level bootstrap of :func:`ratio_ci` and other aggregates)."""
    if prefix is None:
        return
    path = Path(f"{prefix}_{task.replace(' ', '').replace('%', 'pct')}.npz")
    np.savez_compressed(path, samples=samples.astype(np.float32), x=x, mask=mask, labels=labels,
                        records=np.asarray(records).astype(str),
                        **{k.split(" ")[0]: v.astype(np.float32) for k, v in baselines.items()})


def ratio_ci(path: Path, draws: tuple[int, ...] = (8, 16, 32), n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """MAE of the median of the first k draws / MAE of each baseline, with a 95 % bootstrap interval.

    Records, not items, are resampled (beats of one record are not independent); each ratio is
    of pooled MAEs over the unknown samples, as in the tables.
    """
    d = np.load(path)
    x, miss = d["x"].astype(np.float64), ~d["mask"]
    unit = "record" if "records" in d else "item"  # files written before records were stored
    rec = d["records"] if unit == "record" else np.arange(len(x))
    recs, inv = np.unique(rec, return_inverse=True)

    def abs_err(pred: np.ndarray) -> np.ndarray:  # per item: (sum |err| over unknown, count)
        e = np.where(miss, np.abs(pred - x), 0.0).reshape(len(x), -1)
        return np.stack([e.sum(1), miss.reshape(len(x), -1).sum(1)], axis=1)

    per_rec = lambda a: np.stack([np.bincount(inv, a[:, j], len(recs)) for j in (0, 1)], axis=1)  # noqa: E731
    base = {k: per_rec(abs_err(d[k])) for k in ("linear", "previous") if k in d}
    rng = np.random.default_rng(seed)
    boot = rng.integers(0, len(recs), size=(n_boot, len(recs)))
    out = []
    for k in draws:
        if k > d["samples"].shape[1]:
            continue
        ours = per_rec(abs_err(np.median(d["samples"][:, :k], axis=1)))
        for name, b in base.items():
            point = (ours[:, 0].sum() / ours[:, 1].sum()) / (b[:, 0].sum() / b[:, 1].sum())
            r = (ours[boot, 0].sum(1) / ours[boot, 1].sum(1)) / (b[boot, 0].sum(1) / b[boot, 1].sum(1))
            lo, hi = np.quantile(r, [0.025, 0.975])
            out.append({"file": path.name, "median_of": k, "baseline": name, "ratio": float(point),
                        "ci95": [float(lo), float(hi)], "p_ratio_ge_1": float(np.mean(r >= 1.0)),
                        "resampled": unit, "units": int(len(recs)), "items": int(len(x))})
    return out


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
    p.add_argument("--parts", default="beats,windows", help="which models to train and evaluate")
    p.add_argument("--beat-train-steps", type=int, default=4000)
    p.add_argument("--window-train-steps", type=int, default=2400)
    p.add_argument("--pair-train-steps", type=int, default=4000,
                   help="part 'pairs': a beat with its neighbour as known context (2 x 192 samples)")
    p.add_argument("--max-train-minutes", type=float, default=None, help="stop a training early (safety net)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200, help="linear lr warm-up steps")
    p.add_argument("--lr-schedule", default="cosine", choices=("constant", "cosine"))
    p.add_argument("--cond", default="both", choices=("stft", "time", "both"))
    p.add_argument("--prior", default="none", choices=("none", "linear", "repeat"),
                   help="completion prior: linear = C1 gaps filled by linear interpolation, diffuse the residual; "
                        "repeat = also copy the sample one beat length earlier (pairs only)")
    p.add_argument("--width", type=int, default=16, help="U-Net base width of both models")
    p.add_argument("--judge-minutes", type=float, default=3.0)
    p.add_argument("--eval-on", default="test", choices=("test", "val"),
                   help="val: held-out TRAINING records (10 %%), for choosing settings; test: the final figures")
    p.add_argument("--test-windows", type=int, default=48)
    p.add_argument("--test-beats", type=int, default=256)
    p.add_argument("--steps", type=int, default=25, help="DDIM steps for completion")
    p.add_argument("--draws", type=int, default=8, help="draws per item; 1 draw, median and mean are reported")
    p.add_argument("--nested-draws", default="",
                   help="also report the median of the first k draws, e.g. 8,16 (from the same --draws samples)")
    p.add_argument("--save-samples", action="store_true",
                   help="write every draw, truth, mask and baseline to OUT/samples_<split>_<part>_<task>.npz")
    p.add_argument("--gen-per-class", type=int, default=24)
    p.add_argument("--reuse", action="store_true",
                   help="load the models finished in --out whatever their step count (never train)")
    p.add_argument("--train-only", action="store_true", help="train (or resume) the models, evaluate nothing")
    p.add_argument("--tasks", default=None, help="comma-separated task names to evaluate (default: all)")
    p.add_argument("--skip-completion", action="store_true", help="generation and throughput figures only")
    p.add_argument("--skip-generation", action="store_true", help="completion figures only")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--render", type=Path, help="only print the markdown tables of a results.json")
    p.add_argument("--ci", type=Path, nargs="+", help="only print bootstrap intervals of samples_*.npz files")
    a = p.parse_args(argv)
    if a.ci:
        for path in a.ci:
            for row in ratio_ci(path):
                print(json.dumps(row))
        return
    if a.render is not None:
        print(render(json.loads(a.render.read_text())))
        return
    if a.quick:
        a.per_class, a.beat_train_steps, a.window_train_steps, a.judge_minutes, a.warmup = 30, 40, 10, 0.2, 5
        a.pair_train_steps = 40
        a.test_windows, a.test_beats, a.steps, a.draws, a.gen_per_class = 4, 16, 4, 3, 2
    parts = [x for x in a.parts.split(",") if x]
    a.nested_draws = tuple(int(k) for k in a.nested_draws.split(",") if k.strip())
    torch.set_num_threads(a.threads)
    from augframe.data import cinc2017_windows
    from augframe_diffecg.beats import cut_beats
    from augframe_diffecg.masks import forecast_mask

    a.out.mkdir(parents=True, exist_ok=True)
    results_path = a.out / f"results_{a.eval_on}.json"
    res: dict = {}
    call = {"id": f"{os.getpid()}@{time.time():.0f}", "argv": sys.argv[1:] if argv is None else list(argv), "args": {k: str(v) for k, v in vars(a).items()},
            "loadavg_start": os.getloadavg()}
    res["calls"] = [call]  # merged with the file's earlier calls by save_results
    res.update({"torch": torch.__version__,
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads={a.threads}"})
    t0 = time.perf_counter()
    windows = cinc2017_windows(a.data, classes=("N", "A"), limit_per_class=a.per_class, normalise=None, seed=a.seed)
    tr_idx, te_idx = split_by_record(windows, 0.2, a.seed)
    train_all, test_w_all = windows.select(tr_idx), windows.select(te_idx)
    fit_idx, val_idx = split_by_record(train_all, 0.1, a.seed + 1)  # validation records: inside the training 80 %
    train_w = train_all.select(fit_idx)
    if a.eval_on == "val":
        test_w_all = train_all.select(val_idx)
    train_b, test_b_all = cut_beats(train_w), cut_beats(test_w_all)
    train_p = beat_pairs(train_b, neighbour_index(train_b)) if "pairs" in parts else None
    res["data"] = {"windows_train": len(train_w), "windows_test": len(test_w_all), "beats_train": len(train_b),
                   "beats_test": len(test_b_all), "records": int(len(np.unique(windows.meta["record"]))),
                   "eval_on": a.eval_on, "load_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(res["data"]), flush=True)

    models = {
        "beats": (train_b, dict(width=a.width, mults=(1, 2, 4), blocks=1, n_fft=32, hop=4, train_batch_size=32),
                  a.beat_train_steps),
        "pairs": (train_p, dict(width=a.width, mults=(1, 2, 4), blocks=1, n_fft=32, hop=4, train_batch_size=32),
                  a.pair_train_steps),
        "windows": (train_w, dict(width=a.width, mults=(1, 2, 2, 4), blocks=1, n_fft=64, hop=16, train_batch_size=8),
                    a.window_train_steps),
    }
    gens = {}
    for name in parts:
        data, arch, steps = models[name]
        arch = dict(arch, cond=a.cond, **({"prior": a.prior} if a.prior != "none" else {}))
        if a.prior == "repeat":
            if name != "pairs":
                raise SystemExit("--prior repeat needs the pair layout (--parts pairs): its period is one beat")
            arch["period"] = int(data.n_samples // 2)
        gens[name], res[f"train_{name}"] = train_or_load(name, data, arch, steps, a)
    if a.train_only:
        call["total_s"], call["loadavg_end"] = round(time.perf_counter() - t0, 1), os.getloadavg()
        save_results(results_path, res)
        return

    # ---- imputation and forecasting ---------------------------------------------------------
    te_w = test_w_all.select(balanced(test_w_all.labels, a.test_windows, a.seed))
    te_b = test_b_all.select(balanced(test_b_all.labels, a.test_beats, a.seed))
    def run_part(part: str, evaluate) -> None:
        """Evaluate one part, record its result and wall seconds, and save the results so far."""
        t1 = time.perf_counter()
        res[part] = evaluate()
        res[f"eval_{part}_s"] = round(time.perf_counter() - t1, 1)
        save_results(results_path, res)

    if "windows" in parts and not a.skip_completion:
        shp_w = te_w.signals.shape
        masks_w = gap_masks(shp_w, a.seed)
        masks_w.update({f"forecast last {h} s": forecast_mask(shp_w, int(h * te_w.fs)) for h in (1, 2)})
        masks_w = pick_tasks(masks_w, a.tasks)
        run_part("windows", lambda: eval_completion(
            gens["windows"], te_w, masks_w, a.draws, a.steps, forecast_keys={k for k in masks_w if k.startswith("forecast")},
            seed=a.seed, nested=a.nested_draws, save_to=samples_prefix(a, "windows")))
    masks_b = pick_tasks(gap_masks(te_b.signals.shape, a.seed), a.tasks)  # beats and pairs: the same items and masks
    if "beats" in parts and not a.skip_completion:
        # the previous-beat baseline needs each test beat's neighbour: keep the full test beat set for it
        run_part("beats", lambda: eval_completion_beats(gens["beats"], test_b_all, te_b, masks_b, a.draws, a.steps, a.seed,
                                                        nested=a.nested_draws, save_to=samples_prefix(a, "beats")))
    if "pairs" in parts and not a.skip_completion:
        sel = balanced(test_b_all.labels, a.test_beats, a.seed)  # the items of the beat task
        run_part("pairs", lambda: eval_completion_pairs(gens["pairs"], test_b_all, sel, masks_b, a.draws, a.steps, a.seed,
                                                        nested=a.nested_draws, save_to=samples_prefix(a, "pairs")))

    if not a.skip_generation and {"beats", "windows"} <= set(parts):
        t1 = time.perf_counter()
        res["generation"] = generation(gens, train_w, test_w_all, train_b, test_b_all, a)
        res["throughput"] = {
            "windows_ddim50": throughput(gens["windows"], te_w.select(np.arange(min(8, len(te_w)))), 50, 2),
            "beats_ddim50": throughput(gens["beats"], te_b.select(np.arange(min(64, len(te_b)))), 50, 2),
        }
        res["generation_s"] = round(time.perf_counter() - t1, 1)
        print(json.dumps(res["throughput"]))
    call["total_s"] = round(time.perf_counter() - t0, 1)
    call["loadavg_end"] = os.getloadavg()
    save_results(results_path, res)
    (a.out / f"results_{a.eval_on}.md").write_text(render(json.loads(results_path.read_text())))
    print(f"wrote {results_path} in {call['total_s']} s")


def samples_prefix(a, part: str) -> Path | None:
    return a.out / f"samples_{a.eval_on}_{part}" if a.save_samples else None


def save_results(path: Path, res: dict) -> None:
    """Merge this invocation's figures into ``path`` (re-read first: several parts may run side by side)."""
    old = json.loads(path.read_text()) if path.is_file() else {}
    ids = {c["id"] for c in res["calls"]}
    calls = [c for c in old.get("calls", []) if c.get("id") not in ids] + res["calls"]
    merged = {**old, **res, "calls": calls}
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(merged, indent=1))
    tmp.replace(path)


def gap_masks(shape: tuple[int, ...], seed: int) -> dict[str, np.ndarray]:
    """One long gap of 10, 30 and 50 % per item (seeds seed, seed + 1, seed + 2): the imputation tasks."""
    from augframe_diffecg.masks import long_gap_mask

    return {f"gap {int(f * 100)} %": long_gap_mask(shape, f, seed=seed + k) for k, f in enumerate((0.1, 0.3, 0.5))}


def pick_tasks(masks: dict, tasks: str | None) -> dict:
    if tasks is None:
        return masks
    wanted = [t.strip() for t in tasks.split(",")]
    return {k: v for k, v in masks.items() if k in wanted}


def train_or_load(name: str, data: ECGBatch, arch: dict, steps: int, a) -> tuple[object, dict]:
    """Train ``steps`` optimiser steps in ``out/name`` (resuming a stopped run), or load a finished one."""
    from augframe.training import TrainLog
    from augframe_diffecg.generator import DiffECGGenerator

    workdir = a.out / name
    ckpt, summary_path = workdir / "diffecg.safetensors", workdir / "summary.json"
    if ckpt.is_file() and summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        if a.reuse or (summary["steps"] >= steps and summary["arch"] == {k: str(v) for k, v in arch.items()}):
            print(f"{name}: loading {ckpt} ({summary['steps']} steps)", flush=True)
            return DiffECGGenerator(checkpoint=str(ckpt), device=a.device), summary
    if a.reuse:
        raise SystemExit(f"--reuse: no finished {name} model in {workdir} (run without --reuse to train it)")
    gen = DiffECGGenerator(**arch, train_steps=steps, lr=a.lr, warmup_steps=a.warmup, lr_schedule=a.lr_schedule,
                           time_budget_s=None if a.max_train_minutes is None else 60 * a.max_train_minutes,
                           device=a.device)
    t1 = time.perf_counter()
    gen.fit(data, seed=a.seed, workdir=workdir)
    wall = time.perf_counter() - t1
    log = TrainLog.read(workdir / "train_log.jsonl")  # every call of a resumed run
    params = sum(p.numel() for p in gen.model.parameters())
    train_s = sum(r["elapsed_s"] for i, r in enumerate(log) if i + 1 == len(log) or log[i + 1]["elapsed_s"] < r["elapsed_s"])
    summary = {"steps": log[-1]["step"], "batch": arch["train_batch_size"], "params": params,
               "wall_s": round(train_s, 1), "wall_s_this_call": round(wall, 1),
               "steps_per_s": log[-1]["step"] / train_s, "windows_per_s": log[-1]["step"] * arch["train_batch_size"] / train_s,
               "loss_first": log[0]["loss"], "loss_last": log[-1]["loss"],
               "loss_at": {str(r["step"]): round(r["loss"], 4) for r in log[:: max(1, len(log) // 8)]},
               "lr": a.lr, "warmup": a.warmup, "lr_schedule": a.lr_schedule, "ema": 0.999,
               "loadavg_end": os.getloadavg(), "arch": {k: str(v) for k, v in arch.items()}}
    summary_path.write_text(json.dumps(summary))
    print(name, json.dumps(summary), flush=True)
    return gen, summary


def generation(gens: dict, train_w: ECGBatch, test_w_all: ECGBatch, train_b: ECGBatch, test_b_all: ECGBatch, a) -> dict:
    """Class-conditional generation: validator acceptance, judge agreement, generation MAE."""
    judge, judge_info = train_judge(train_w, test_w_all, 60 * a.judge_minutes, a.seed)
    gen_res = {"judge": judge_info}
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
    return gen_res


def _fmt(v: float) -> str:
    return f"{v:.4f}"


def render(res: dict) -> str:
    """Markdown tables of every figure in ``res`` (what .notes/bench-diffecg.md and docs/diffecg.md show)."""
    out = []
    d = res["data"]
    split = "validation records (inside the training 80 %)" if d.get("eval_on") == "val" else "held-out test records"
    out.append(f"Data: {d['records']} CinC 2017 records (N and A), split 80/20 by record, 10 % of the training "
               f"records kept out of training for validation: {d['windows_train']} training windows, "
               f"{d['beats_train']} training beats; evaluated on {split}: {d['windows_test']} windows, "
               f"{d['beats_test']} beats.\n")
    for c in res.get("calls", []):
        if "total_s" in c:
            la = ", ".join(f"{x:.1f}" for x in c["loadavg_start"])
            out.append(f"- `python -m bench.diffecg {' '.join(c['argv'])}`: {c['total_s']:.0f} s wall, "
                       f"load average at start {la}")
    out.append("")
    out.append("| model | params | optimiser steps x batch | train wall | steps/s | ECGs/s | loss first -> last 25 steps |")
    out.append("|---|---:|---:|---:|---:|---:|---|")
    for name in ("beats", "pairs", "windows"):
        t = res.get(f"train_{name}")
        if t is None:
            continue
        out.append(f"| {name} (width {t['arch']['width']}, mults {t['arch']['mults']}, cond {t['arch'].get('cond', 'stft')}, "
                   f"prior {t['arch'].get('prior', 'none')}) | "
                   f"{t['params']:,} | {t['steps']} x {t['batch']} | {t['wall_s']:.0f} s | {t['steps_per_s']:.2f} | "
                   f"{t['windows_per_s']:.1f} | {t['loss_first']:.3f} -> {t['loss_last']:.3f} |")
    summary = []
    for part, title in (("windows", "10 s windows"), ("beats", "heartbeats (192 samples)"),
                        ("pairs", "heartbeats with the neighbour beat as known context (2 x 192 samples; "
                                  "scored on the beat's gap, the same items and masks as the heartbeat rows)")):
        if part not in res:
            continue
        timing = [r for r in res[part] if r["method"] == "_timing"]
        rows = [r for r in res[part] if r["method"] != "_timing"]
        classes = [k[4:] for k in rows[0] if k.startswith("mae_")]
        out.append(f"\n**{title}**: MAE / RMSE in mV over the unknown samples (n = {timing[0]['n']} items per task, "
                   f"DDIM {timing[0].get('steps', '?')} steps)\n")
        out.append("| task | method | MAE | RMSE | " + " | ".join(f"MAE {c}" for c in classes) + " | MAE vs best baseline |")
        out.append("|---|---|---:|---:|" + "---:|" * len(classes) + "---:|")
        for task in dict.fromkeys(r["task"] for r in rows):
            trs = [r for r in rows if r["task"] == task]
            best = min(r["mae"] for r in trs if not r["method"].startswith("DiffECG"))
            best_rmse = min(r["rmse"] for r in trs if not r["method"].startswith("DiffECG"))
            for r in trs:
                ratio = f"{r['mae'] / best:.2f}x" if r["method"].startswith("DiffECG") else ""
                out.append(f"| {task} | {r['method']} | {_fmt(r['mae'])} | {_fmt(r['rmse'])} | "
                           + " | ".join(_fmt(r[f'mae_{c}']) for c in classes) + f" | {ratio} |")
            diff = {r["method"]: r for r in trs if r["method"].startswith("DiffECG")}
            summary.append((part, task, best, best_rmse, diff))
    if summary:
        out.append("\n**Summary**: DiffECG MAE (RMSE) as a multiple of the best baseline's; < 1 beats both baselines\n")
        names = list(dict.fromkeys(m for *_, diff in summary for m in diff))
        out.append("| input | task | " + " | ".join(n.replace("DiffECG, ", "") for n in names) + " | beats both (median, MAE) |")
        out.append("|---|---|" + "---:|" * len(names) + "---|")
        for part, task, best, best_rmse, diff in summary:
            cells = [f"{diff[n]['mae'] / best:.2f} ({diff[n]['rmse'] / best_rmse:.2f})" if n in diff else "" for n in names]
            med = [n for n in diff if "median" in n]  # the last one is the median of all draws
            ok = "yes" if med and diff[med[-1]]["mae"] < best else "**no**"
            out.append(f"| {part} | {task} | " + " | ".join(cells) + f" | {ok} |")
    if "generation" in res:
        out.append(render_generation(res))
    return "\n".join(out) + "\n"


def render_generation(res: dict) -> str:
    out = []
    g = res["generation"]
    out.append("\n**Generation** (DDIM 50 steps, class-conditional, equal numbers per class)\n")
    w = g["windows"]
    out.append("| windows | value |")
    out.append("|---|---:|")
    for key in ("n", "acceptance", "real_acceptance", "mean_score", "judge_agreement", "judge_agreement_N",
                "judge_agreement_A", "judge_agreement_real_same_n", "std_generated", "std_real_test"):
        if key in w:
            out.append(f"| {key} | {w[key] if isinstance(w[key], str) else round(w[key], 4)} |")
    for k, v in g.get("judge", res.get("judge", {})).items():
        out.append(f"| {k} | {v if isinstance(v, str) else round(v, 4)} |")
    b = g["beats"]
    out.append("\n| beats | value |")
    out.append("|---|---:|")
    for key in ("n", "generation_mae", "generation_mae_real_train_beats", "generation_mae_gaussian_noise",
                "std_generated", "std_real_test"):
        out.append(f"| {key} | {round(b[key], 4)} |")
    if "throughput" in res:
        out.append("\n**Sampling throughput** (DDIM 50 steps, half of each ECG known, median of repeats)\n")
        out.append("| input | batch | median s | ECGs/s |")
        out.append("|---|---:|---:|---:|")
        for k, v in res["throughput"].items():
            out.append(f"| {k} | {v['n']} | {v['median_s']:.1f} | {v['ecgs_per_s']:.3f} |")
    tim = [r for r in res.get("windows", []) if r["method"] == "_timing"]
    if tim:
        out.append("\n| completion wall time per call (windows) | linear | R-aligned beat repeat | DiffECG per draw | ratio DiffECG / beat repeat |")
        out.append("|---|---:|---:|---:|---:|")
        for r in tim:
            out.append(f"| {r['task']} (n={r['n']}) | {r['linear_s']:.3f} s | {r['beat_s']:.3f} s | "
                       f"{r['diffecg_s_per_draw']:.1f} s | {r['diffecg_s_per_draw'] / r['beat_s']:.0f}x |")
    return "\n".join(out)


def neighbour_index(beats: ECGBatch) -> np.ndarray:
    """Row of each beat's neighbour in ``beats``: the previous beat of its window, else the next; -1 if none.

    The same rule as the previous-beat baseline, so a pair holds exactly the beat that baseline copies.
    """
    key = {(int(w), int(o)): i for i, (w, o) in enumerate(zip(beats.meta["window"], beats.meta["beat"]))}
    return np.array([key.get((int(w), int(o) - 1), key.get((int(w), int(o) + 1), -1))
                     for w, o in zip(beats.meta["window"], beats.meta["beat"])], dtype=np.int64)


def beat_pairs(beats: ECGBatch, nb: np.ndarray, rows: np.ndarray | None = None) -> ECGBatch:
    """``[neighbour | beat]`` (twice the beat length) for the beats at ``rows`` (all) that have a neighbour.

    Both halves are R-aligned beats, so the model sees the same neighbour the previous-beat
    baseline copies, placed where it can attend to it.
    """
    rows = np.arange(len(beats)) if rows is None else np.asarray(rows)
    rows = rows[nb[rows] >= 0]
    x = beats.numpy()
    return ECGBatch(np.concatenate([x[nb[rows]], x[rows]], axis=-1), beats.fs, beats.leads,
                    labels=None if beats.labels is None else beats.labels[rows], class_names=beats.class_names,
                    ids=[f"{beats.ids[r]}+ctx" for r in rows], meta={k: v[rows] for k, v in beats.meta.items()},
                    units=beats.units)


def eval_completion_pairs(gen, all_beats: ECGBatch, sel: np.ndarray, masks: dict, draws: int, steps: int,
                          seed: int, nested: tuple[int, ...] = (), save_to: Path | None = None) -> list[dict]:
    """The beat task with the neighbour as context: the same items and masks, scored on the beat half only."""
    from augframe_diffecg.baselines import linear_interpolation

    nb = neighbour_index(all_beats)
    if (nb[sel] < 0).any():
        raise SystemExit(f"{int((nb[sel] < 0).sum())} test beats have no neighbour: the pair task needs one")
    te = all_beats.select(sel)
    pairs = beat_pairs(all_beats, nb, sel)
    x, half = te.numpy(), te.n_samples
    rows = []
    for name, mask in masks.items():
        preds = {"linear interpolation": linear_interpolation(x, mask),
                 "previous beat": np.where(mask, x, all_beats.numpy()[nb[sel]])}
        pmask = np.concatenate([np.ones_like(mask), mask], axis=-1)  # the neighbour is fully known
        samples, t_diff = complete_draws(gen, pairs, pmask, seed=seed + 1000, steps=steps, draws=draws)
        samples = samples[..., half:]
        save_samples(save_to, name, samples, x, mask, te.labels, preds, te.meta["record"])
        preds.update(diffecg_predictions(samples, nested))
        rows += score_rows(name, preds, x, mask, te.labels, te.class_names)
        rows.append({"task": name, "method": "_timing", "diffecg_s_per_draw": t_diff / draws, "draws": draws,
                     "steps": steps, "n": len(x), "no_neighbour": 0})
        print(json.dumps(rows[-(len(preds) + 1):]), flush=True)
    return rows


def eval_completion_beats(gen, all_beats: ECGBatch, te: ECGBatch, masks: dict, draws: int, steps: int,
                          seed: int, nested: tuple[int, ...] = (), save_to: Path | None = None) -> list[dict]:
    """Beat imputation: the test subset, with the previous-beat baseline looked up in all test beats."""
    from augframe_diffecg.baselines import linear_interpolation

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
        samples, t_diff = complete_draws(gen, te, mask, seed=seed + 1000, steps=steps, draws=draws)
        save_samples(save_to, name, samples, x, mask, te.labels, preds, te.meta["record"])
        preds.update(diffecg_predictions(samples, nested))
        rows += score_rows(name, preds, x, mask, te.labels, te.class_names)
        rows.append({"task": name, "method": "_timing", "diffecg_s_per_draw": t_diff / draws, "draws": draws,
                     "steps": steps, "n": len(x), "no_neighbour": int((nb < 0).sum())})
        print(json.dumps(rows[-(len(preds) + 1):]), flush=True)
    return rows


if __name__ == "__main__":
    main()
