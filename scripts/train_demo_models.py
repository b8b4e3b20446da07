"""Train the two small models augframe ships for its CPU demo, on CinC 2017 N and A windows.

    python scripts/train_demo_models.py data  --cinc ../shared/data/cinc2017 --out /tmp/af7
    python scripts/train_demo_models.py judge --out /tmp/af7
    python scripts/train_demo_models.py generator --out /tmp/af7 --stage 1
    python scripts/train_demo_models.py generator --out /tmp/af7 --stage 2
    python scripts/train_demo_models.py ship --out /tmp/af7

``data`` reads CinC 2017 (N and A records, a seeded subset of N), cleans and windows it like the
bundled demo sample (250 Hz, 10 s, reference cleaning, mV) and splits it by recording: every
record of the bundled demo sample is held out of training, the rest goes 80 / 5 / 15 % to
train / validation / test (stratified by class, seeded). ``judge`` fits AFibResLSTM
(registry classifier ``afib-reslstm``, small width) with focal loss and records held-out
figures. ``generator`` fits DiffStyleTS (registry generator ``diffstylets``, improved mode, small
width) in two calls that share one work directory (stage 1, then stage 2 resumed from stage 1's
state with the judge as flip-loss classifier). ``ship`` copies the weights and figures to
``plugins/augframe_afib/pretrained/`` and ``plugins/augframe_diffstylets/pretrained/``. One torch thread throughout: the demo
models are sized for a shared CPU, not for quality.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
JUDGE_PARAMS = {"width": 0.25, "depth": [1, 1, 1, 1], "class_names": ["N", "A"]}
GEN_MODEL = {"encoder_channels": 16, "content_dim": 64, "style_dim": 32, "model_channels": 16,
             "attention_heads": 4, "norm_groups": 8}
JUDGE_FILE = "afib-reslstm-w025-cinc2017.safetensors"
GEN_FILE = "diffstylets-w16-cinc2017.safetensors"


def _load(out: Path) -> dict[str, np.ndarray]:
    path = out / "windows.npz"
    if not path.is_file():
        sys.exit(f"{path} is missing: run `python scripts/train_demo_models.py data --out {out}` first")
    return dict(np.load(path))


def cmd_data(args: argparse.Namespace) -> None:
    from augframe.data import cinc2017_windows, demo_windows

    t0 = time.time()
    b = cinc2017_windows(args.cinc, classes=("N", "A"), limit_per_class=args.records_per_class,
                         normalise=None, seed=args.seed)
    rec = np.asarray(b.meta["record"]).astype(str)
    demo = set(np.asarray(demo_windows().meta["record"]).astype(str))
    rng = np.random.default_rng(args.seed)
    split = np.full(len(rec), "train", dtype="<U5")
    split[np.isin(rec, list(demo))] = "demo"
    for c in (0, 1):  # stratified by class, grouped by record
        recs = np.unique(rec[(b.labels == c) & (split != "demo")])
        recs = recs[rng.permutation(len(recs))]
        n_test, n_val = int(round(0.15 * len(recs))), int(round(0.05 * len(recs)))
        split[np.isin(rec, recs[:n_test])] = "test"
        split[np.isin(rec, recs[n_test:n_test + n_val])] = "val"
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "windows.npz", x=np.asarray(b.signals, np.float32), y=np.asarray(b.labels, np.int64),
             rec=rec, split=split)
    counts = {s: {c: int(((split == s) & (b.labels == i)).sum()) for i, c in enumerate("NA")}
              for s in ("train", "val", "test", "demo")}
    print(json.dumps({"windows": int(len(rec)), "records": int(len(set(rec))), "counts": counts,
                      "seconds": round(time.time() - t0, 1)}))


def _crop(seconds: float, fs: float = 250.0):
    """Per-batch random crop (seeded): the judge pools over time, so short crops train it faster."""
    n = int(seconds * fs)

    def run(x: torch.Tensor, _y: torch.Tensor, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        start = int(torch.randint(0, x.shape[-1] - n + 1, (1,), generator=g))
        return x[..., start:start + n]
    return run


def cmd_judge(args: argparse.Namespace) -> None:
    from augframe.plugins import Registry
    from augframe_afib.classifiers import save_afib_reslstm
    from augframe_afib.fit import TrainSettings, fit_classifier, predict_proba
    from augframe_afib.metrics import classification_metrics

    d = _load(args.out)
    x, y, split = d["x"], d["y"], d["split"]
    rng = np.random.default_rng(args.seed)
    val = np.flatnonzero(split == "val")
    val = val[rng.permutation(len(val))[: args.val_windows]]
    params = dict(JUDGE_PARAMS, seed=args.seed)
    if args.init is not None:  # continue from an earlier judge (same width/depth)
        params["checkpoint"] = str(args.init)
    model = Registry.discover().create("classifier", "afib-reslstm", params)
    settings = TrainSettings(max_epochs=args.epochs, patience=args.epochs, batch_size=32, lr=2e-3,
                             max_steps_per_epoch=args.steps)
    t0 = time.time()
    tr = split == "train"
    res = fit_classifier(model, x[tr], y[tr], x[val], y[val], settings, seed=args.seed,
                         augment=_crop(args.crop_s), show_progress=True, desc="judge")
    fit_s = time.time() - t0
    figures = {}
    for name in ("test", "demo"):
        idx = np.flatnonzero(split == name)
        proba = predict_proba(model, x[idx], batch_size=64)
        m = classification_metrics(y[idx], proba)
        figures[name] = {k: float(v) for k, v in m.items()} | {
            "windows": int(len(idx)), "records": int(len(set(d["rec"][idx]))),
            "N": int((y[idx] == 0).sum()), "A": int((y[idx] == 1).sum())}
    save_afib_reslstm(args.out / JUDGE_FILE, model, JUDGE_PARAMS["width"], JUDGE_PARAMS["depth"])
    info = {"params": JUDGE_PARAMS, "parameters": int(sum(p.numel() for p in model.parameters())),
            "settings": {"max_epochs": args.epochs, "steps_per_epoch": args.steps, "batch_size": 32, "lr": 2e-3,
                         "loss": "focal (alpha 0.65 on A, gamma 2)", "crop_s": args.crop_s},
            "train_windows": int(tr.sum()), "val_windows": int(len(val)), "best_epoch": res.best_epoch,
            "epochs_run": res.epochs_run, "samples_seen": res.samples_seen, "history": list(res.history),
            "fit_seconds": round(fit_s, 1), "init": None if args.init is None else str(args.init.name), "held_out": figures, "seed": args.seed,
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    (args.out / "judge.json").write_text(json.dumps(info, indent=2))
    print(json.dumps({"fit_s": info["fit_seconds"], "held_out": figures}, indent=1))


def cmd_generator(args: argparse.Namespace) -> None:
    from augframe.plugins import Registry
    from augframe.signals import ECGBatch

    d = _load(args.out)
    tr = d["split"] == "train"
    data = ECGBatch(d["x"][tr], 250.0, ("I",), labels=d["y"][tr], class_names=("N", "A"), units="mV")
    judge = args.out / JUDGE_FILE
    train = {"stage1_epochs": args.stage1_epochs, "stage2_epochs": 0 if args.stage == 1 else args.stage2_epochs,
             "batch_size": args.batch_size, "max_steps_per_epoch": args.steps, "lr": args.lr,
             "checkpoint_every": 1, "flip_steps": 4,
             "judge": "afib-reslstm", "judge_params": dict(JUDGE_PARAMS, checkpoint=str(judge))}
    if args.stage == 2 and not judge.is_file():
        sys.exit(f"{judge} is missing: train the judge first")
    if args.stage == 1:
        train["judge"] = ""
        del train["judge_params"]
    gen = Registry.discover().create("generator", "diffstylets", {
        "mode": "improved", "device": "cpu", "model": GEN_MODEL, "train": train,
        "sampler": {"steps": 10}})
    t0 = time.time()
    result = gen.fit(data, seed=args.seed, workdir=args.out / "gen")
    print(json.dumps({"stage": args.stage, "seconds": round(time.time() - t0, 1), "epochs": result["epochs"],
                      "checkpoint": result.get("checkpoint"), "sha256": result.get("sha256")}))


def cmd_ship(args: argparse.Namespace) -> None:
    judge_dir, gen_dir = REPO / "plugins/augframe_afib/pretrained", REPO / "plugins/augframe_diffstylets/pretrained"
    judge_dir.mkdir(exist_ok=True)
    gen_dir.mkdir(exist_ok=True)
    shutil.copyfile(args.out / JUDGE_FILE, judge_dir / JUDGE_FILE)
    shutil.copyfile(args.out / "judge.json", judge_dir / "judge-training.json")
    if (args.out / "judge-v1.json").is_file():  # the first part of a judge trained in two parts
        shutil.copyfile(args.out / "judge-v1.json", judge_dir / "judge-training-part1.json")
    shutil.copyfile(args.out / "gen" / "diffstylets.safetensors", gen_dir / GEN_FILE)
    shutil.copyfile(args.out / "gen" / "train_log.jsonl", gen_dir / "diffstylets-w16-train_log.jsonl")
    print(f"shipped {judge_dir / JUDGE_FILE} and {gen_dir / GEN_FILE}")


def cmd_banks(args: argparse.Namespace) -> None:
    """Rebuild the shipped generator's banks from the training split (style vectors and, new, the rhythm
    bank of R-peak times that improved-mode re-timing draws from) and record the judge its stage 2
    trained against. The weights are unchanged."""
    from augframe.judges import JudgeRef
    from augframe.plugins import Registry
    from augframe.signals import ECGBatch

    d = _load(args.out)
    tr = d["split"] == "train"
    data = ECGBatch(d["x"][tr], 250.0, ("I",), labels=d["y"][tr], class_names=("N", "A"), units="mV")
    path = REPO / "plugins/augframe_diffstylets/pretrained" / GEN_FILE
    gen = Registry.discover().create("generator", "diffstylets", {"checkpoint": str(path), "device": "cpu"})
    gen.set_style_bank(data, seed=args.seed)
    judge = REPO / "plugins/augframe_afib/pretrained" / JUDGE_FILE
    from augframe.judges import judge_identity

    # stage 2 trained against the first part of this judge; the shipped judge continued from those
    # weights, so it is the same judge for independence purposes
    gen.trained_against = (JudgeRef("afib-reslstm", judge_identity("afib-reslstm", {"checkpoint": str(judge)}),
                                    "diffstylets stage 2 (flip loss) used this judge's first training part"),)
    sha = gen.save(path)
    print(json.dumps({"checkpoint": str(path), "sha256": sha, "rhythms": len(gen.rhythm_bank),
                      "per_class": np.bincount(gen.rhythm_bank.labels).tolist()}))


def main(argv: list[str] | None = None) -> None:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["data", "judge", "generator", "ship", "banks"])
    p.add_argument("--out", type=Path, required=True, help="work directory (windows, weights, logs)")
    p.add_argument("--cinc", default="../shared/data/cinc2017", help="CinC 2017 training folder")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--records-per-class", type=int, default=1200)
    p.add_argument("--epochs", type=int, default=8, help="judge epochs")
    p.add_argument("--steps", type=int, default=16, help="steps per epoch (judge and generator)")
    p.add_argument("--val-windows", type=int, default=256)
    p.add_argument("--init", type=Path, default=None, help="judge: start from this checkpoint")
    p.add_argument("--crop-s", type=float, default=5.0)
    p.add_argument("--stage", type=int, choices=[1, 2], default=1)
    p.add_argument("--stage1-epochs", type=int, default=10)
    p.add_argument("--stage2-epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    args = p.parse_args(argv)
    {"data": cmd_data, "judge": cmd_judge, "generator": cmd_generator, "ship": cmd_ship,
     "banks": cmd_banks}[args.command](args)


if __name__ == "__main__":
    main()
