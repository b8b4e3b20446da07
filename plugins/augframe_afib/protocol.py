"""The three-way (A real / B synthetic / C mixed, optional D classical augmentation) protocol with TOST.

Two modes:

* ``faithful``: the reference's design (spec section 9). StratifiedKFold(k) separately on the
  synthetic set and on the real training pool; one shared real test set for every fold; per fold
  n = synthetic training ECGs and T = 3n; A = T real ECGs, B = the n synthetic plus 2n copies drawn
  with replacement with N(0, sigma=0.01) noise, C = the n synthetic plus 2n real; validation = up
  to 5,000 ECGs of the real fold-validation part.
* ``corrected`` (default): folds grouped by patient (record when no patient id is known), each
  fold's test part is an independent test set (so df = k - 1 is honest), validation is grouped
  too, synthetic ECGs whose source belongs to a test or validation patient are dropped (no
  leakage through the generator's sources), every condition gets the same step budget and
  stopping rule (class-balanced batches, warm-up + cosine, early stopping on validation AUROC:
  ``augframe_afib.fit``), runs that end on the cap are flagged, and condition D = A's real ECGs
  with torch-ecg's classical augmentation can be added (the baseline reviewers ask for).

``classifiers`` trains several registry classifiers (e.g. ``afib-reslstm`` and ``rr-features``) on
the same folds and conditions; every table has a classifier column and every metric exists per
classifier as ``<label>/<key>`` (the first classifier's also without the prefix).

Statistics: TOST paired across folds on each comparison against A (margin +-2 pp, df = k - 1),
plus per-sample paired tests on the test predictions (z-TOST with the paired variance, a seeded
bootstrap, and McNemar). Every random step derives from ``context.seed``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from augframe.errors import ValidationError, require_choice
from augframe.plugins import Registry
from augframe.protocols import EvalContext, EvaluationResult, Table
from augframe.seeding import Stream, numpy_rng
from augframe.signals import ECGBatch
from augframe.training import resolve_device

from augframe_afib import tost
from augframe_afib.fit import TrainSettings
from augframe_afib.inputs import check_compatible, check_folds, fingerprint, groups_of, synthetic_groups
from augframe_afib.metrics import METRICS, classification_metrics
from augframe_afib.runs import ClassifierSpec, build_classifier, classifier_specs, settings_key, store_for, train_and_test

MODES = ("corrected", "faithful")
CONDITION_TEXT = {
    "A": "real only",
    "B": "synthetic x3 (+ noise)",
    "C": "synthetic + 2n real",
    "D": "real + classical augmentation",
}


@attrs.frozen(eq=False)
class ConditionPlan:
    real: np.ndarray
    synthetic: np.ndarray
    noisy_copies: np.ndarray
    augment: bool = False

    @property
    def size(self) -> int:
        return len(self.real) + len(self.synthetic) + len(self.noisy_copies)


@attrs.frozen(eq=False)
class FoldPlan:
    fold: int
    n_synthetic: int
    val: np.ndarray
    test: np.ndarray
    conditions: Mapping[str, ConditionPlan]
    dropped_synthetic: int = 0


#: Verdict of a comparison A - X when a classifier of A or X predicted one class for every test ECG:
#: equal accuracies of degenerate classifiers say nothing about the synthetic data, so no
#: equivalence is claimed (comparisons between non-degenerate conditions keep their verdict).
NOT_ASSESSABLE = "not assessable (degenerate classifiers)"


class ThreeWayEvaluator:
    """``three-way``: train the same classifier on A/B/C(/D) per fold, test on real ECGs, TOST the gaps."""

    name = "three-way"

    def __init__(
        self, mode: str = "corrected", folds: int = 5, classifier: str = "afib-reslstm",
        classifier_params: Mapping[str, Any] | None = None,
        classifiers: Sequence[str | Mapping[str, Any]] | None = None, max_steps: int | None = None,
        max_epochs: int | None = None, patience: int | None = None, batch_size: int | None = None,
        lr: float | None = None, weight_decay: float | None = None, grad_clip: float | None = None,
        max_steps_per_epoch: int | None = None, balance: str | None = None, monitor: str | None = None,
        noise_sigma: float = 0.01, include_d: bool = False,
        augmenters: Sequence[str] = ("baseline_wander", "random_masking", "stretch_compress"),
        margin: float = tost.REFERENCE_MARGIN, alpha: float = 0.05, tost_metric: str = "accuracy",
        test_fraction: float = 0.15, val_fraction: float = 0.15, max_val: int = 5000, n_boot: int = 2000,
        positive_class: int = 1, registry: Registry | None = None,
    ) -> None:
        self.mode = require_choice("three-way mode", mode, MODES)
        if self.mode == "faithful" and include_d:
            raise ValidationError("condition D is part of the corrected protocol only; drop include_d or use mode='corrected'")
        self.folds = int(folds)
        self.specs = classifier_specs(classifier, classifier_params, classifiers)
        given = {k: v for k, v in dict(
            max_steps=max_steps, max_epochs=max_epochs, patience=patience, batch_size=batch_size, lr=lr,
            weight_decay=weight_decay, grad_clip=grad_clip, max_steps_per_epoch=max_steps_per_epoch, balance=balance,
            monitor=monitor).items() if v is not None}
        # faithful: the reference's loop (40 epochs); corrected: the robust recipe's step budget
        self.train_settings = TrainSettings.reference(**given) if self.mode == "faithful" else TrainSettings(**given)
        self.noise_sigma = float(noise_sigma)
        self.include_d = bool(include_d)
        self.augmenters = tuple(augmenters)
        self.margin, self.alpha = float(margin), float(alpha)
        self.tost_metric = require_choice("tost_metric", tost_metric, METRICS)
        if not 0 < test_fraction < 1 or not 0 < val_fraction < 1:
            raise ValidationError("test_fraction and val_fraction must lie in (0, 1)")
        self.test_fraction, self.val_fraction = float(test_fraction), float(val_fraction)
        self.max_val, self.n_boot, self.positive = int(max_val), int(n_boot), int(positive_class)
        self._registry = registry

    @property
    def classifier(self) -> str:
        """The primary (first) classifier's registry name."""
        return self.specs[0].name

    @property
    def conditions(self) -> tuple[str, ...]:
        return ("A", "B", "C", "D") if self.include_d else ("A", "B", "C")

    def settings(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "folds": self.folds, "classifiers": [c.settings() for c in self.specs],
            "train": attrs.asdict(self.train_settings),
            "noise_sigma": self.noise_sigma, "include_d": self.include_d, "augmenters": list(self.augmenters),
            "test_fraction": self.test_fraction, "val_fraction": self.val_fraction, "max_val": self.max_val,
        }

    # ---- planning (pure index arithmetic, before any training) --------------------------------
    def plan(self, real: ECGBatch, synthetic: ECGBatch, sources: ECGBatch | None, seed: int) -> tuple[list[FoldPlan], list[str]]:
        names = check_compatible(real, synthetic)
        if self.mode == "faithful":
            return self._plan_faithful(real, synthetic, names, seed)
        return self._plan_corrected(real, synthetic, sources, names, seed)

    def _plan_faithful(self, real: ECGBatch, synthetic: ECGBatch, names: tuple[str, ...], seed: int):
        y_real, y_syn = real.labels, synthetic.labels
        notes = ["faithful mode: the reference's protocol, with its known flaws (shared test set, no patient "
                 "grouping, df = k - 1 overstates certainty)"]
        if "split" in real.meta:
            is_test = np.asarray(real.meta["split"]).astype(str) == "test"
            if not is_test.any() or is_test.all():
                raise ValidationError("real.meta['split'] must mark some (not all) ECGs as 'test'")
            test, pool = np.flatnonzero(is_test), np.flatnonzero(~is_test)
            notes.append(f"shared test set: the {len(test)} real ECGs with meta split == 'test'")
        else:
            pool, test = train_test_split(np.arange(len(real)), test_size=self.test_fraction, stratify=y_real,
                                          random_state=seed % 2**32)
            notes.append(f"shared test set: a stratified {self.test_fraction:.0%} of the real ECGs ({len(test)})")
        check_folds(y_syn, self.folds, "synthetic", names)
        check_folds(y_real[pool], self.folds, "real training pool", names)
        syn_folds = list(StratifiedKFold(self.folds, shuffle=True, random_state=seed % 2**32).split(y_syn, y_syn))
        pool_folds = list(StratifiedKFold(self.folds, shuffle=True, random_state=seed % 2**32).split(pool, y_real[pool]))
        plans = []
        for f, ((syn_tr, _), (p_tr, p_va)) in enumerate(zip(syn_folds, pool_folds)):
            n = len(syn_tr)
            real_tr, real_va = pool[p_tr], pool[p_va]
            if 3 * n > len(real_tr):
                raise ValidationError(
                    f"faithful mode needs T = 3n = {3 * n} real training ECGs in fold {f} but the real pool has "
                    f"{len(real_tr)}; use fewer synthetic ECGs or more real ones"
                )
            rng = numpy_rng(seed, Stream.AFIB_FAITHFUL, f)
            val = real_va if len(real_va) <= self.max_val else np.sort(rng.choice(real_va, self.max_val, replace=False))
            cond = {
                "A": ConditionPlan(rng.choice(real_tr, 3 * n, replace=False), _empty(), _empty()),
                "B": ConditionPlan(_empty(), syn_tr, rng.choice(syn_tr, 2 * n, replace=True)),
                "C": ConditionPlan(rng.choice(real_tr, 2 * n, replace=False), syn_tr, _empty()),
            }
            plans.append(FoldPlan(f, n, val, test, cond))
        return plans, notes

    def _plan_corrected(self, real: ECGBatch, synthetic: ECGBatch, sources: ECGBatch | None,
                        names: tuple[str, ...], seed: int):
        y_real, y_syn = real.labels, synthetic.labels
        groups, field = groups_of(real)
        notes = [f"corrected mode: folds grouped by {field if field != 'ids' else 'record id'}; each fold tests on "
                 "its own held-out real ECGs (independent test folds)"]
        if field == "ids":
            notes.append("no patient ids in real.meta: ECGs were grouped by record id, so several windows of one "
                         "patient can still fall into different folds")
        check_folds(y_real, self.folds, "real", names, groups=groups, per_fold=2)
        check_folds(y_syn, self.folds, "synthetic", names)
        syn_groups = synthetic_groups(real, synthetic, sources)
        if syn_groups is None:
            notes.append("synthetic ECGs carry no link to their real sources (meta source_id / patient_id or "
                         "aligned sources): leakage through the generator's sources could not be excluded")
            syn_split = list(StratifiedKFold(self.folds, shuffle=True, random_state=seed % 2**32).split(y_syn, y_syn))
        outer = StratifiedGroupKFold(self.folds, shuffle=True, random_state=seed % 2**32)
        plans = []
        inner_k = max(2, int(round(1 / self.val_fraction)))
        for f, (trval, test) in enumerate(outer.split(np.zeros(len(real)), y_real, groups)):
            inner = StratifiedGroupKFold(inner_k, shuffle=True, random_state=(seed + 7919 * (f + 1)) % 2**32)
            tr_i, va_i = next(inner.split(np.zeros(len(trval)), y_real[trval], groups[trval]))
            real_tr, val = trval[tr_i], trval[va_i]
            dropped = 0
            if syn_groups is not None:  # sources outside the real set (another split) cannot leak: kept
                keep = ~np.isin(syn_groups, np.unique(groups[np.concatenate([test, val])]))
                dropped = int(np.sum(~keep))
                syn_tr = np.flatnonzero(keep)
            else:
                syn_tr = syn_split[f][0]
            present = np.unique(y_syn[syn_tr])
            if len(present) < len(names):
                raise ValidationError(
                    f"fold {f}: after dropping synthetic ECGs made from test/validation patients, class(es) "
                    f"{[names[c] for c in set(range(len(names))) - set(present.tolist())]} have no synthetic ECGs; "
                    "generate from more source patients or lower folds"
                )
            n = len(syn_tr)
            if 3 * n > len(real_tr):
                raise ValidationError(
                    f"fold {f}: T = 3n = {3 * n} real training ECGs are needed (n = {n} synthetic) but only "
                    f"{len(real_tr)} are available; use fewer synthetic ECGs or more real ones"
                )
            rng = numpy_rng(seed, Stream.AFIB_CORRECTED, f)
            if len(val) > self.max_val:
                val = np.sort(rng.choice(val, self.max_val, replace=False))
            a_real = rng.choice(real_tr, 3 * n, replace=False)
            cond = {
                "A": ConditionPlan(a_real, _empty(), _empty()),
                "B": ConditionPlan(_empty(), syn_tr, rng.choice(syn_tr, 2 * n, replace=True)),
                "C": ConditionPlan(rng.choice(real_tr, 2 * n, replace=False), syn_tr, _empty()),
            }
            if self.include_d:
                cond["D"] = ConditionPlan(a_real, _empty(), _empty(), augment=True)
            plans.append(FoldPlan(f, n, val, test, cond, dropped))
        if any(p.dropped_synthetic for p in plans):
            notes.append("synthetic ECGs made from a fold's test/validation patients were left out of that fold's "
                         f"training (per fold: {[p.dropped_synthetic for p in plans]})")
        return plans, notes

    # ---- running --------------------------------------------------------------------------------
    def evaluate(self, real: ECGBatch, synthetic: ECGBatch, *, sources: ECGBatch | None = None,
                 context: EvalContext = EvalContext()) -> EvaluationResult:
        seed = int(context.seed)
        plans, notes = self.plan(real, synthetic, sources, seed)  # every input check happens here
        registry = self._registry or Registry.discover()
        for spec in self.specs:
            registry.get("classifier", spec.name)  # unknown classifier: fail before training
        device = resolve_device(context.device)
        key = settings_key(self.settings(), fingerprint(real), fingerprint(synthetic), seed)
        store = store_for(context.workdir, self.name, key)
        xr, xs = real.numpy(), synthetic.numpy()
        augment = None
        if self.include_d:
            from augframe_afib.classical import ClassicalAugment

            augment = ClassicalAugment(real.fs, self.augmenters)
        records: dict[tuple[str, int, str], dict[str, Any]] = {}
        probas: dict[tuple[str, int, str], np.ndarray] = {}
        resumed = 0
        t0 = time.perf_counter()
        for plan in plans:
            for cond in self.conditions:
                data = None
                for spec in self.specs:
                    run = f"{spec.label}.fold{plan.fold}_{cond}"
                    found = store.get(run)
                    if found is None:
                        cp = plan.conditions[cond]
                        if data is None:
                            data = self._materialise(xr, real.labels, xs, synthetic.labels, cp, seed, plan.fold)
                        found = self._run(registry, spec, real, data, plan, cond, augment if cp.augment else None,
                                          seed, device, context.progress, store.state_path(run))
                        store.put(run, *found)
                    else:
                        resumed += 1
                    records[(spec.label, plan.fold, cond)] = found[0]
                    probas[(spec.label, plan.fold, cond)] = found[1]["proba_test"]
        if resumed:
            notes.append(f"{resumed} of {len(records)} runs were loaded from an earlier, interrupted evaluation")
        return self._summarise(real, plans, records, probas, notes, seed, time.perf_counter() - t0, key)

    def _run(self, registry: Registry, spec: ClassifierSpec, real: ECGBatch, data: tuple[np.ndarray, np.ndarray],
             plan: FoldPlan, cond: str, augment: Any, seed: int, device: str, show_progress: bool,
             state_path: Path | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Train one classifier on one condition of one fold (same initial weights for every condition)."""
        xr, yr = real.numpy(), real.labels
        run_seed = seed + 1000 * plan.fold
        model = build_classifier(registry, spec.name, spec.params, class_names=real.class_names,
                                 n_leads=real.n_leads, fs=real.fs, seed=run_seed)
        rec, arrays = train_and_test(model, data, (xr[plan.val], yr[plan.val]), {"test": xr[plan.test]},
                                     self.train_settings, seed=run_seed, device=device, augment=augment,
                                     desc=f"{spec.label}.fold{plan.fold}_{cond}", show_progress=show_progress,
                                     state_path=state_path)
        rec["metrics"] = classification_metrics(yr[plan.test], arrays["proba_test"], self.positive)
        rec.update(fold=plan.fold, condition=cond, classifier=spec.label, n_synthetic=plan.n_synthetic)
        arrays["test_index"] = plan.test
        return rec, arrays

    def _materialise(self, xr: np.ndarray, yr: np.ndarray, xs: np.ndarray, ys: np.ndarray, cp: ConditionPlan,
                     seed: int, fold: int) -> tuple[np.ndarray, np.ndarray]:
        parts_x, parts_y = [xr[cp.real], xs[cp.synthetic]], [yr[cp.real], ys[cp.synthetic]]
        if len(cp.noisy_copies):
            noise = numpy_rng(seed, Stream.AFIB_NOISE_CONTROL, fold).standard_normal(
                (len(cp.noisy_copies),) + xs.shape[1:]).astype(np.float32)
            parts_x.append(xs[cp.noisy_copies] + self.noise_sigma * noise)
            parts_y.append(ys[cp.noisy_copies])
        return np.concatenate(parts_x).astype(np.float32), np.concatenate(parts_y).astype(np.int64)

    # ---- statistics and the result -----------------------------------------------------------
    def _summarise(self, real: ECGBatch, plans: list[FoldPlan], records: dict, probas: dict, notes: list[str],
                   seed: int, seconds: float, key: str) -> EvaluationResult:
        several = len(self.specs) > 1
        metrics: dict[str, float] = {}
        summary_rows, per_fold_rows, tost_rows, intervals, headline = [], [], [], [], []
        details: dict[str, Any] = {"runs": {}, "resume_key": key, "seed": seed, "settings": self.settings()}
        for i, spec in enumerate(self.specs):
            part = self._summarise_classifier(spec, real, plans, records, probas, seed)
            for k, v in part["metrics"].items():
                metrics[f"{spec.label}/{k}"] = v
                if i == 0:
                    metrics[k] = v
            summary_rows += [[spec.label, *r] for r in part["summary"]]
            per_fold_rows += [[spec.label, *r] for r in part["per_fold"]]
            tost_rows += [[spec.label, *r] for r in part["equivalence"]]
            tag = f"{spec.label}: " if several else ""
            intervals += [(tag + iv[0], *iv[1:]) for iv in part["intervals"]]
            headline += [dict(card, label=tag + card["label"]) for card in part["headline"]]
            notes += [tag + n for n in part["notes"]]
            details["runs"].update({f"{spec.label}.fold{f}_{c}": r for (lab, f, c), r in records.items()
                                    if lab == spec.label})
            details.setdefault("mcnemar", {})[spec.label] = part["mcnemar"]
        details["headline"] = headline
        details["title"] = f"Real / synthetic / mixed training (three-way protocol, {self.mode})"
        details["section"] = "utility"
        n_syn = sorted({p.n_synthetic for p in plans})
        scale = (f"{len(plans)} folds ({self.mode}), n = {'/'.join(map(str, n_syn))} synthetic and T = 3n per fold, "
                 f"classifier{'s' if several else ''} "
                 f"{', '.join(c.describe() for c in self.specs)}, "
                 f"{self.train_settings.describe()}, {seconds:.0f} s")
        from augframe.report.svg import interval_plot

        figures = {}
        if intervals:
            figures["equivalence"] = interval_plot(
                intervals, margin=self.margin,
                caption=f"Differences A - X with {100 * (1 - 2 * self.alpha):.0f}% confidence intervals; the band is "
                        f"the equivalence margin +-{100 * self.margin:g} pp. Inside the band = equivalent.")
        return EvaluationResult(
            name=self.name, metrics=metrics,
            tables={
                "summary": Table(["classifier", "condition", "training data", "accuracy", "F1", "AUROC", "sensitivity",
                                  "specificity", "runs at epoch cap"], summary_rows,
                                 caption="Mean +- SD over folds (percent), tested on real ECGs only."),
                "equivalence": Table(["classifier", "comparison", "metric", "test", "difference", "90% CI",
                                      "p (lower)", "p (upper)", "p (TOST)", "verdict"], tost_rows,
                                     caption=f"TOST equivalence, margin +-{100 * self.margin:g} percentage points, "
                                             f"alpha {self.alpha}."),
                "per_fold": Table(["classifier", "fold", "condition", "n train", "accuracy", "F1", "AUROC",
                                   "sensitivity", "specificity", "best epoch", "epochs run", "at cap"], per_fold_rows),
            },
            figures=figures, notes=notes, scale=scale, details=details,
        )

    def _summarise_classifier(self, spec: ClassifierSpec, real: ECGBatch, plans: list[FoldPlan], records: dict,
                              probas: dict, seed: int) -> dict[str, Any]:
        """Tables, metrics (unprefixed keys), TOST and headline cards of one classifier."""
        conds, folds, lab = self.conditions, [p.fold for p in plans], spec.label
        rec = {(f, c): records[(lab, f, c)] for f in folds for c in conds}
        prob = {(f, c): probas[(lab, f, c)] for f in folds for c in conds}
        metrics: dict[str, float] = {}
        notes: list[str] = []
        per_fold_rows = []
        for f in folds:
            for c in conds:
                r, m = rec[(f, c)], rec[(f, c)]["metrics"]
                per_fold_rows.append([f + 1, c, r["n_train"], *(_r(m[k]) for k in ("accuracy", "f1", "auroc",
                                      "recall", "specificity")), r["best_epoch"], r["epochs_run"],
                                      "yes" if r["hit_cap"] else ""])
        summary_rows = []
        for c in conds:
            vals = {k: np.array([rec[(f, c)]["metrics"][k] for f in folds]) for k in METRICS}
            for k, v in vals.items():
                metrics[f"{c}.{k}.mean"] = float(np.mean(v))
                metrics[f"{c}.{k}.sd"] = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
            capped = sum(rec[(f, c)]["hit_cap"] for f in folds)
            summary_rows.append([c, CONDITION_TEXT[c], *(_pm(vals[k]) for k in ("accuracy", "f1", "auroc", "recall",
                                 "specificity")), f"{capped}/{len(folds)}"])
            if capped:
                notes.append(f"condition {c}: {capped} of {len(folds)} runs had their best validation score in the "
                             "last epoch; a larger budget (max_steps) may still change them")
        single = [(f, c) for f in folds for c in conds if len(np.unique(prob[(f, c)].argmax(1))) < 2]
        degenerate = {c for _, c in single}  # a comparison A - c is assessable only if neither side is
        if single:
            notes.append(f"{len(single)} run(s) predicted a single class for every test ECG "
                         f"({', '.join(f'fold {f + 1} {c}' for f, c in single)}): such classifiers are degenerate, "
                         "and equal accuracies between them say nothing about the synthetic data; train longer or "
                         "use a larger classifier")
        tost_rows, intervals, mcnemar = [], [], {}
        for c in conds[1:]:
            verdict = (lambda res: NOT_ASSESSABLE) if {"A", c} & degenerate else (lambda res: res.verdict)
            for metric in dict.fromkeys((self.tost_metric, "f1", "auroc")):
                a = [rec[(f, "A")]["metrics"][metric] for f in folds]
                b = [rec[(f, c)]["metrics"][metric] for f in folds]
                if np.isnan(a).any() or np.isnan(b).any():
                    continue
                res = tost.tost_paired(a, b, self.margin, self.alpha)
                _, t_p = tost.paired_ttest(a, b)
                tag = f"tost.A_vs_{c}.{metric}"
                metrics.update({f"{tag}.p": res.p, f"{tag}.mean_diff": res.mean_diff, f"{tag}.ci_low": res.ci[0],
                                f"{tag}.ci_high": res.ci[1], f"{tag}.equivalent": float(res.equivalent),
                                f"{tag}.sd_diff": float(np.std(np.subtract(a, b), ddof=1)) if len(a) > 1 else 0.0,
                                f"ttest.A_vs_{c}.{metric}.p": t_p})
                tost_rows.append([f"A - {c}", metric, "folds (paired t)", _pp(res.mean_diff),
                                  f"[{_pp(res.ci[0])}, {_pp(res.ci[1])}]", _p(res.p_lower), _p(res.p_upper),
                                  _p(res.p), verdict(res)])
                if metric == self.tost_metric:
                    intervals.append((f"A - {c} ({metric}, folds)", res.mean_diff, res.ci[0], res.ci[1], res.equivalent))
            ps = self._per_sample(real, plans, prob, c, seed)
            for res in ps["tests"]:
                tag = f"tost_samples.A_vs_{c}.{res.method.split()[0]}"
                metrics.update({f"{tag}.p": res.p, f"{tag}.mean_diff": res.mean_diff})
                tost_rows.append([f"A - {c}", "accuracy", f"{res.method}, n={res.n}", _pp(res.mean_diff),
                                  f"[{_pp(res.ci[0])}, {_pp(res.ci[1])}]", _p(res.p_lower), _p(res.p_upper),
                                  _p(res.p), verdict(res)])
                intervals.append((f"A - {c} (accuracy, {res.method})", res.mean_diff, res.ci[0], res.ci[1],
                                  res.equivalent))
            metrics[f"mcnemar.A_vs_{c}.p"] = ps["mcnemar"].p
            mcnemar[f"A_vs_{c}"] = attrs.asdict(ps["mcnemar"])
        return {"metrics": metrics, "summary": summary_rows, "per_fold": per_fold_rows, "equivalence": tost_rows,
                "intervals": intervals, "notes": notes, "mcnemar": mcnemar,
                "headline": self._headline(metrics, conds, len(folds), degenerate)}

    def _headline(self, metrics: dict, conds: tuple[str, ...], k: int, degenerate: set[str]) -> list[dict[str, Any]]:
        m = self.tost_metric
        cards = [{"label": f"A real only: {m}", "value": f"{100 * metrics[f'A.{m}.mean']:.2f}%",
                  "status": "neutral", "note": f"mean of {k} folds, SD {100 * metrics[f'A.{m}.sd']:.2f} pp"}]
        for c in conds[1:]:
            tag = f"tost.A_vs_{c}.{m}"
            if f"{tag}.p" not in metrics:
                continue
            eq = bool(metrics[f"{tag}.equivalent"])
            bad = bool({"A", c} & degenerate)
            cards.append({
                "label": f"{c} {CONDITION_TEXT[c]} vs A",
                "value": NOT_ASSESSABLE if bad else ("equivalent" if eq else "not equivalent"),
                "status": "warn" if bad else ("good" if eq else "bad"),
                "note": (f"{m} {100 * metrics[f'{c}.{m}.mean']:.2f}% (SD {100 * metrics[f'{c}.{m}.sd']:.2f} pp), "
                         f"difference A - {c} {100 * metrics[f'{tag}.mean_diff']:+.2f} pp "
                         f"(SD {100 * metrics[f'{tag}.sd_diff']:.2f} pp), TOST p = {metrics[f'{tag}.p']:.3g} "
                         f"(margin +-{100 * self.margin:g} pp)"),
            })
        return cards

    def _per_sample(self, real: ECGBatch, plans: list[FoldPlan], probas: dict, cond: str, seed: int) -> dict[str, Any]:
        """``probas`` of one classifier, keyed (fold, condition)."""
        y = real.labels
        if self.mode == "faithful":  # shared test set: ensemble the fold models (as the reference's enhanced analysis)
            test = plans[0].test
            pa = np.mean([probas[(p.fold, "A")] for p in plans], axis=0)
            pc = np.mean([probas[(p.fold, cond)] for p in plans], axis=0)
            yt = y[test]
        else:  # independent test folds: every real ECG is tested exactly once
            yt = np.concatenate([y[p.test] for p in plans])
            pa = np.concatenate([probas[(p.fold, "A")] for p in plans])
            pc = np.concatenate([probas[(p.fold, cond)] for p in plans])
        ca, cc = pa.argmax(1) == yt, pc.argmax(1) == yt
        return {
            "tests": [tost.tost_paired_proportions(ca, cc, self.margin, self.alpha),
                      tost.bootstrap_paired(ca, cc, seed=seed, margin=self.margin, alpha=self.alpha, n_boot=self.n_boot)],
            "mcnemar": tost.mcnemar(ca, cc),
        }


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


def _r(x: float) -> float:
    return round(float(x), 4)


def _pm(v: np.ndarray) -> str:
    sd = np.std(v, ddof=1) if len(v) > 1 else 0.0
    return f"{100 * np.mean(v):.2f} +- {100 * sd:.2f}"


def _pp(x: float) -> str:
    return f"{100 * x:+.2f} pp"


def _p(p: float) -> str:
    if p == 0:
        return "0"
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"
