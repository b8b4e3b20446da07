"""``fidelity``: how close synthetic ECGs are to real ones, per pair and as distributions.

* Per pair (synthetic vs its own source, when sources are given or linked by id): MSE, MAE, PSNR,
  SSIM-1D and SNR exactly as the reference defines them, and Pearson r (:mod:`similarity`).
* Rhythm: heart rate and RR variability (SDNN, RMSSD, RR CV) distributions, real vs synthetic,
  per class, with Kolmogorov-Smirnov and Wasserstein distances (:mod:`rhythm`).
* A frozen judge classifier from the registry: Frechet distance and MMD between real and
  synthetic embeddings, and the flip rate (share of synthetic ECGs the judge assigns to their
  requested class). Without a checkpoint the judge is first trained on the real ECGs (seeded,
  resumable) and then frozen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np
from scipy import stats

from augframe.errors import ValidationError
from augframe.plugins import Registry
from augframe.judges import Independence, judge_ref
from augframe.protocols import EvalContext, EvaluationResult, Table
from augframe.seeding import Stream, numpy_rng
from augframe.signals import ECGBatch
from augframe.training import resolve_device

from augframe_afib.fit import TrainSettings, embed, predict_proba
from augframe_afib.inputs import fingerprint, groups_of
from augframe_afib.rhythm import RHYTHM_FEATURES, rhythm_features
from augframe_afib.runs import build_classifier, settings_key, store_for, train_and_test
from augframe_afib.similarity import PAIR_METRICS, frechet_distance, mmd_rbf, pair_metrics
from augframe_afib.splits import holdout

FEATURE_TEXT = {
    "heart_rate_bpm": "heart rate (bpm)", "rr_sdnn_ms": "RR SDNN (ms)", "rr_rmssd_ms": "RR RMSSD (ms)",
    "rr_cv": "RR coefficient of variation",
}
PAIR_TEXT = {"mse": "MSE", "mae": "MAE", "psnr_db": "PSNR (dB)", "ssim": "SSIM-1D", "snr_db": "SNR (dB)",
             "pearson_r": "Pearson r"}


def _check(real: ECGBatch, synthetic: ECGBatch) -> None:
    for what, b in (("real", real), ("synthetic", synthetic)):
        if len(b) == 0:
            raise ValidationError(f"the {what} set is empty; fidelity needs ECGs in both sets")
    for field in ("fs", "leads", "n_samples"):
        if getattr(real, field) != getattr(synthetic, field):
            raise ValidationError(f"real and synthetic ECGs differ in {field}: {getattr(real, field)!r} vs "
                                  f"{getattr(synthetic, field)!r}; preprocess both the same way")
    if real.class_names and synthetic.class_names and real.class_names != synthetic.class_names:
        raise ValidationError(f"label sets differ: real {real.class_names} vs synthetic {synthetic.class_names}")


def aligned_sources(real: ECGBatch, synthetic: ECGBatch, sources: ECGBatch | None) -> ECGBatch | None:
    if sources is not None:
        if len(sources) != len(synthetic) or sources.n_samples != synthetic.n_samples:
            raise ValidationError(
                f"sources must align one-to-one with the synthetic ECGs ({len(synthetic)} x {synthetic.n_samples}); "
                f"got {len(sources)} x {sources.n_samples}"
            )
        return sources
    for key in ("source_id", "source_record"):
        if key in synthetic.meta:
            pos = {rid: i for i, rid in enumerate(real.ids)}
            idx = [pos.get(str(s)) for s in synthetic.meta[key]]
            if all(i is not None for i in idx):
                return real.select(np.asarray(idx))
    return None


def median_iqr(v: np.ndarray) -> str:
    v = v[np.isfinite(v)]
    if not len(v):
        return "–"
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return f"{med:.3g} [{q1:.3g}, {q3:.3g}]"


class FidelityEvaluator:
    """``fidelity``: per-pair similarity, rhythm distributions, and judge-based distances and flip rate."""

    name = "fidelity"

    @staticmethod
    def validate_params(params: Mapping[str, Any], registry: Any = None) -> None:
        """judge_params against the judge's own factory (a typo there is named before the run)."""
        from augframe.plugins import check_params

        judge = params.get("judge", "afib-reslstm")
        if judge is None or registry is None or not isinstance(params.get("judge_params", {}), Mapping):
            return
        check_params(registry.get("classifier", judge), params.get("judge_params") or {},
                     supplied=("class_names", "seed", "in_channels", "n_leads", "fs")
                     + (("checkpoint",) if params.get("judge_checkpoint") else ()), registry=registry)

    def __init__(
        self, judge: str | None = "afib-reslstm", judge_params: Mapping[str, Any] | None = None,
        judge_checkpoint: str | None = None, fit_judge: bool = True, judge_epochs: int = 20,
        judge_patience: int = 5, judge_max_steps_per_epoch: int | None = None, max_embed: int = 1500,
        n_perm: int = 200, registry: Registry | None = None,
    ) -> None:
        self.judge = judge or None  # "" (a recipe cannot write None) skips the judge-based measures
        self.judge_params = dict(judge_params or {})
        if judge_checkpoint is not None:
            self.judge_params["checkpoint"] = judge_checkpoint
        self.fit_judge = bool(fit_judge)
        if self.judge is not None and self.fit_judge and not self.judge_params:
            raise ValidationError(
                f"fidelity: judge {self.judge!r} has no checkpoint and no judge_params, so it would be trained at "
                "its default (full) width on the real ECGs (8.3 M parameters for afib-reslstm: slow on a CPU). "
                "Say which judge: judge_params = { checkpoint = \"pretrained:afib-reslstm-w025-cinc2017\", width = 0.25, "
                "depth = [1, 1, 1, 1] } (the shipped one), or judge_params = { width = 1.0 } to train one explicitly, "
                "or judge = \"\" to skip the judge-based measures")
        self.judge_settings = TrainSettings(max_epochs=judge_epochs, patience=judge_patience,
                                            max_steps_per_epoch=judge_max_steps_per_epoch)
        self.max_embed, self.n_perm = int(max_embed), int(n_perm)
        self._registry = registry

    def evaluate(self, real: ECGBatch, synthetic: ECGBatch, *, sources: ECGBatch | None = None,
                 context: EvalContext = EvalContext()) -> EvaluationResult:
        _check(real, synthetic)
        seed = int(context.seed)
        metrics: dict[str, float] = {}
        tables: dict[str, Table] = {}
        dists: dict[str, Any] = {}
        headline: list[dict[str, Any]] = []
        notes: list[str] = []
        src = aligned_sources(real, synthetic, sources)
        if src is not None:
            pm = pair_metrics(src.numpy(), synthetic.numpy())
            rows = []
            for k in PAIR_METRICS:
                v = pm[k][np.isfinite(pm[k])]
                metrics[f"pair.{k}.mean"] = float(v.mean()) if len(v) else float("nan")
                metrics[f"pair.{k}.sd"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
                rows.append([PAIR_TEXT[k], float(np.mean(v)) if len(v) else float("nan"),
                             float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"), median_iqr(pm[k]),
                             int(np.sum(~np.isfinite(pm[k])))])
            tables["pairwise"] = Table(["measure", "mean", "SD", "median [IQR]", "non-finite"], rows,
                                       caption="Each synthetic ECG against its own source, as the reference defines "
                                               "the measures (PSNR peak per pair; SSIM box window 11, L = 2).")
            for k in ("psnr_db", "ssim", "pearson_r"):
                dists[k] = {"synthetic vs source": pm[k]}
            headline += [
                {"label": "PSNR vs source", "value": f"{metrics['pair.psnr_db.mean']:.2f} dB", "status": "neutral",
                 "note": f"SD {metrics['pair.psnr_db.sd']:.2f}; reference paper: 12.58 dB"},
                {"label": "SSIM-1D vs source", "value": f"{metrics['pair.ssim.mean']:.3f}", "status": "neutral",
                 "note": "reference: 0.471"},
                {"label": "Pearson r vs source", "value": f"{metrics['pair.pearson_r.mean']:.3f}", "status": "neutral",
                 "note": "reference: 0.186"},
            ]
        else:
            notes.append("no sources given (or linked by meta source_id): per-pair measures were skipped")
        self._rhythm(real, synthetic, metrics, tables, dists, headline)
        if self.judge is not None:
            self._judge(real, synthetic, src, context, seed, metrics, tables, dists, headline, notes)
        labels = {**PAIR_TEXT, **FEATURE_TEXT, "judge_p_target": "judge P(requested class)"}
        return EvaluationResult(
            name=self.name, metrics=metrics, tables=tables, notes=notes,
            details={"distributions": {k: {n: np.asarray(v, float).tolist() for n, v in d.items()}
                                       for k, d in dists.items()},
                     "distribution_labels": labels, "headline": headline, "title": "Signal fidelity",
                     "section": "similarity",
                     "seed": seed},
            scale=(f"{len(real)} real / {len(synthetic)} synthetic ECGs, {real.n_samples / real.fs:g} s at "
                   f"{real.fs:g} Hz, judge {self.judge} {self.judge_params or ''}"),  # no elapsed time: results are reproducible
        )

    # ---- rhythm ---------------------------------------------------------------------------------
    def _rhythm(self, real: ECGBatch, synthetic: ECGBatch, metrics: dict, tables: dict, dists: dict,
                headline: list) -> None:
        fr = rhythm_features(real.numpy(), real.fs)
        fs = rhythm_features(synthetic.numpy(), synthetic.fs)
        rows = []
        groups = [("all", np.ones(len(real), bool), np.ones(len(synthetic), bool))]
        if real.labels is not None and synthetic.labels is not None and real.labels.ndim == 1 \
                and synthetic.labels.ndim == 1 and real.class_names:
            groups += [(name, real.labels == c, synthetic.labels == c) for c, name in enumerate(real.class_names)]
        for gname, mr, ms in groups:
            for k in RHYTHM_FEATURES:
                a, b = fr[k][mr], fs[k][ms]
                a, b = a[np.isfinite(a)], b[np.isfinite(b)]
                if len(a) < 2 or len(b) < 2:
                    continue
                ks = stats.ks_2samp(a, b)
                wd = stats.wasserstein_distance(a, b)
                metrics[f"rhythm.{gname}.{k}.ks"] = float(ks.statistic)
                metrics[f"rhythm.{gname}.{k}.wasserstein"] = float(wd)
                rows.append([gname, FEATURE_TEXT[k], median_iqr(a), median_iqr(b), float(ks.statistic), float(ks.pvalue),
                             float(wd)])
        tables["rhythm"] = Table(["class", "feature", "real median [IQR]", "synthetic median [IQR]", "KS D", "KS p",
                                  "Wasserstein"], rows,
                                 caption="R peaks from a 5-20 Hz band-pass and scipy find_peaks; ECGs with fewer "
                                         "than 3 beats are left out. Synthetic ECGs of a class are compared with "
                                         "real ECGs of the same class.")
        for k in ("heart_rate_bpm", "rr_rmssd_ms"):
            dists[k] = {"real": fr[k], "synthetic": fs[k]}
        hr_real, hr_syn = np.nanmedian(fr["heart_rate_bpm"]), np.nanmedian(fs["heart_rate_bpm"])
        headline.append({"label": "Median heart rate", "value": f"{hr_syn:.0f} bpm synthetic",
                         "status": "good" if abs(hr_syn - hr_real) < 10 else "warn",
                         "note": f"real {hr_real:.0f} bpm"})

    # ---- judge ------------------------------------------------------------------------------------
    def _judge(self, real: ECGBatch, synthetic: ECGBatch, src: ECGBatch | None, context: EvalContext, seed: int,
               metrics: dict, tables: dict, dists: dict, headline: list, notes: list) -> None:
        registry = self._registry or Registry.discover()
        names = real.class_names or synthetic.class_names
        if not names:
            notes.append("no class names: the judge-based measures were skipped")
            return
        device = resolve_device(context.device)
        model = build_classifier(registry, self.judge, self.judge_params, class_names=names, n_leads=real.n_leads,
                                 fs=real.fs, seed=seed)
        judge_note = f"judge {self.judge} loaded from {self.judge_params['checkpoint']}" \
            if "checkpoint" in self.judge_params else None
        x_real = real.numpy()
        eval_idx = np.arange(len(real))
        if judge_note is None:
            if not self.fit_judge:
                notes.append("the judge has random weights (no checkpoint, fit_judge=False): its embeddings are "
                             "random features and the flip rate is meaningless")
            elif real.labels is None:
                raise ValidationError("fit_judge needs labelled real ECGs; pass judge_checkpoint instead")
            else:
                groups, _ = groups_of(real)
                trval, held = holdout(real.labels, 0.2, seed + 11, groups, "real")
                tr_i, va_i = holdout(real.labels[trval], 0.2, seed + 12, groups[trval], "real training")
                key = settings_key(self.judge, self.judge_params, attrs.asdict(self.judge_settings), fingerprint(real), seed)
                store = store_for(context.workdir, self.name, key)
                found = store.get("judge")
                if found is not None and "state" not in found[1]:
                    found = None
                if found is None:
                    rec, arrays = train_and_test(
                        model, (x_real[trval[tr_i]], real.labels[trval[tr_i]]),
                        (x_real[trval[va_i]], real.labels[trval[va_i]]), {"held": x_real[held]}, self.judge_settings,
                        seed=seed, device=device, desc="judge", show_progress=context.progress)
                    arrays = dict(arrays)
                    state = model.state_dict()
                    arrays.update({f"state/{k}": v.detach().cpu().numpy() for k, v in state.items()})
                    arrays["state"] = np.zeros(1)
                    store.put("judge", rec, arrays)
                else:
                    import torch

                    rec, arrays = found
                    model.load_state_dict({k[6:]: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()
                                           if k.startswith("state/")})
                acc = float(np.mean(arrays["proba_held"].argmax(1) == real.labels[held]))
                metrics["judge.real_heldout_accuracy"] = acc
                eval_idx = held
                judge_note = (f"judge {self.judge} trained on {len(tr_i)} real ECGs (best epoch {rec['best_epoch']}), "
                              f"frozen; accuracy on {len(held)} held-out real ECGs {acc:.3f}")
        if judge_note:
            notes.append(judge_note)
        ind = context.independence(judge_ref(self.judge, self.judge_params, role="evaluation"))
        metrics["judge.independent"] = float("nan") if ind.independent is None else float(ind.independent)
        notes.append(f"judge {self.judge}: {ind.label} ({ind.reason})")
        recall = self._real_recall(model, real, eval_idx, names, device)
        rng = numpy_rng(seed, Stream.AFIB_FIDELITY)
        r_idx = eval_idx if len(eval_idx) <= self.max_embed else rng.choice(eval_idx, self.max_embed, replace=False)
        s_idx = np.arange(len(synthetic))
        if len(s_idx) > self.max_embed:
            s_idx = rng.choice(s_idx, self.max_embed, replace=False)
        e_real = embed(model, x_real[r_idx], device=device)
        e_syn = embed(model, synthetic.numpy()[s_idx], device=device)
        fd = frechet_distance(e_real, e_syn)
        mm = mmd_rbf(e_real, e_syn, seed=seed, n_perm=self.n_perm)
        # scale reference: the same distances between two halves of the real set
        half = rng.permutation(r_idx)
        h1, h2 = half[: len(half) // 2], half[len(half) // 2:]
        fd_rr = frechet_distance(embed(model, x_real[h1], device=device), embed(model, x_real[h2], device=device)) \
            if min(len(h1), len(h2)) >= 2 else float("nan")
        metrics.update({"embed.frechet": fd, "embed.frechet_real_halves": fd_rr, "embed.mmd2": mm["mmd2"],
                        "embed.mmd_p": mm["mmd_p"]})
        rows = [["Frechet distance (real vs synthetic)", fd, f"{len(r_idx)} / {len(s_idx)} ECGs"],
                ["Frechet distance (real half vs real half)", fd_rr, "scale reference"],
                ["MMD² (RBF, unbiased)", mm["mmd2"], f"permutation p = {mm['mmd_p']:.3g}"]]
        if synthetic.labels is not None and synthetic.labels.ndim == 1:
            proba = predict_proba(model, synthetic.numpy(), device=device)
            pred = proba.argmax(1)
            target = synthetic.labels
            p_target = proba[np.arange(len(target)), target]
            dists["judge_p_target"] = {"synthetic": p_target}
            mask = np.ones(len(target), bool)
            if src is not None and src.labels is not None and src.labels.ndim == 1:
                mask = src.labels != target  # counterfactuals only: the class was meant to change
            if mask.any():
                flip = float(np.mean(pred[mask] == target[mask]))
                metrics["judge.flip_rate"] = flip
                rows.append(["flip rate", flip, f"{int(mask.sum())} synthetic ECGs whose requested class the judge "
                             "assigns"])
                for c, cname in enumerate(names):
                    m = mask & (target == c)
                    if m.any():
                        to_c = float(np.mean(pred[m] == c))
                        metrics[f"judge.flip_rate.to_{cname}"] = to_c
                        rows.append([f"flip rate to {cname}", to_c, f"{int(m.sum())} ECGs; the judge calls "
                                     f"{100 * recall.get(cname, float('nan')):.1f}% of real {cname} ECGs {cname}"])
                        headline.append(judge_card(f"Flip rate to {cname}", to_c, recall.get(cname), cname,
                                                   int(m.sum()), self.judge, ind))
        tables["judge"] = Table(["measure", "value", "basis"], rows,
                                caption=f"On the frozen judge's embeddings ({e_real.shape[1]}-d: pooled ResNet + "
                                        "attention features for afib-reslstm). Lower distance = closer.")
        headline.append({"label": "Frechet distance (judge embeddings)", "value": f"{fd:.3g}", "status": "neutral",
                         "note": f"real-vs-real halves: {fd_rr:.3g}; judge {self.judge}", "judge": ind.to_dict()})
        for cname, r in recall.items():
            metrics[f"judge.real_recall.{cname}"] = r

    @staticmethod
    def _real_recall(model: Any, real: ECGBatch, idx: np.ndarray, names: tuple[str, ...], device: str
                     ) -> dict[str, float]:
        """The judge's own accuracy on real ECGs of each class (what a flip rate must be read against)."""
        if real.labels is None or real.labels.ndim != 1 or not len(idx):
            return {}
        pred = predict_proba(model, real.numpy()[idx], device=device).argmax(1)
        y = real.labels[idx]
        return {c: float(np.mean(pred[y == k] == k)) for k, c in enumerate(names) if (y == k).any()}


def judge_card(label: str, rate: float, real_rate: float | None, cname: str, n: int, judge: str,
               ind: Independence) -> dict[str, Any]:
    """A flip-rate card: read against the judge's accuracy on real ECGs of that class, never green
    unless the judge is independent of the generator and the filters."""
    real_txt = "–" if real_rate is None else f"{100 * real_rate:.1f}%"
    good = ind.independent is True and rate >= 0.8 and (real_rate is None or rate <= real_rate + 0.1)
    status = ("good" if good else "warn") if ind.independent is True else "neutral"
    return {"label": label, "value": f"{100 * rate:.1f}%", "status": status,
            "note": f"{n} ECGs; judge {judge} calls {real_txt} of real {cname} ECGs {cname}; {ind.label}",
            "judge": ind.to_dict()}
