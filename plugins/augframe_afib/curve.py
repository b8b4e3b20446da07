"""The augmentation curve: how much do synthetic ECGs help a classifier, and at how much real data?

For each real fraction of the minority class's records (5, 10, 25, 50, 100 % by default) and each
seed, a registry classifier is trained from scratch on the run's training split under four
conditions that differ only in what is added to the same real training set:

* ``real``: the fraction's minority records plus every majority record;
* ``oversampled``: real + the fraction's minority windows duplicated (as many as ``synthetic`` adds);
* ``classical``: real + those same duplicates passed through torch-ecg's augmenters (the
  three-way protocol's condition D augmenters, ``augframe_afib.classical``);
* ``synthetic``: real + synthetic minority ECGs from the bank whose source record lies in this
  cell's training records (never a validation or test record's).

Seeds pair the cells: one seed fixes the validation split (grouped by record, or patient when
known) and the order in which minority records are drawn, so every condition and classifier of a
seed sees the same real data, and the fractions are nested. Every cell is tested on the held-out
real set and the external sets; differences between conditions are tested across seeds (paired
t-test and Wilcoxon signed-rank). Each finished cell is stored, so a killed evaluation resumes.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
from scipy import stats

from augframe.errors import ValidationError, require_choice
from augframe.judges import WEIGHT_PARAMS, Independence, judge_ref
from augframe.plugins import Registry
from augframe.protocols import EvalContext, EvaluationResult, ExternalSet, Table
from augframe.seeding import Stream, derive_seeds, numpy_rng
from augframe.signals import ECGBatch
from augframe.training import resolve_device

from augframe_afib.classical import DEFAULT_AUGMENTERS
from augframe_afib.fit import TrainSettings
from augframe_afib.inputs import RECORD_KEYS, check_labelled, fingerprint, groups_of, lineage
from augframe_afib.metrics import classification_metrics
from augframe_afib.runs import ClassifierSpec, build_classifier, parse_classifiers, settings_key, store_for, train_and_test
from augframe_afib.splits import holdout
from augframe_afib.tost import paired_ttest

CONDITIONS = ("real", "oversampled", "classical", "synthetic")
CONDITION_TEXT = {
    "real": "real only",
    "oversampled": "real + minority windows duplicated",
    "classical": "real + classically augmented minority duplicates",
    "synthetic": "real + synthetic minority ECGs",
}
#: (first, second): each difference first - second is tested across seeds.
COMPARISONS = (("synthetic", "real"), ("synthetic", "oversampled"), ("classical", "real"),
               ("synthetic", "classical"))
TEST_METRICS = ("auroc", "f1", "sensitivity", "specificity")
NOT_TESTABLE = "not testable (< 3 seeds)"


@attrs.frozen(eq=False)
class CellPlan:
    """The training data of one (fraction, seed), shared by every condition and classifier.

    Indices point into the training pool (``real``, ``val``, ``duplicates``) or the synthetic set
    (``synthetic``); ``duplicates`` and ``synthetic`` have the same length (the added count).
    """

    fraction: float
    seed_index: int
    seed: int
    real: np.ndarray
    val: np.ndarray
    minority_records: int
    minority_available: int
    duplicates: np.ndarray
    synthetic: np.ndarray
    eligible: int
    target: int

    @property
    def n_added(self) -> int:
        return len(self.synthetic)


@attrs.frozen
class PairedDifference:
    """first - second across seeds: mean, SD and the two paired tests (None when < 3 seeds)."""

    n: int
    mean: float
    sd: float
    t_p: float | None
    wilcoxon_p: float | None

    @property
    def testable(self) -> bool:
        return self.t_p is not None


def paired_difference(first: Sequence[float], second: Sequence[float]) -> PairedDifference:
    """Paired t-test and Wilcoxon signed-rank of first - second over the seeds where both are finite."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    if n < 3:
        return PairedDifference(n, mean, sd, None, None)
    if not np.any(d):  # identical results: no evidence of a difference
        return PairedDifference(n, mean, sd, 1.0, 1.0)
    with warnings.catch_warnings():  # scipy warns on near-constant differences; the p-values stand
        warnings.simplefilter("ignore", RuntimeWarning)
        _, t_p = paired_ttest(a[ok], b[ok])
        w_p = float(stats.wilcoxon(d).pvalue)
    return PairedDifference(n, mean, sd, t_p, w_p)


def source_groups(pool: ECGBatch, real: ECGBatch, synthetic: ECGBatch, sources: ECGBatch | None) -> np.ndarray:
    """The record (patient when known) each synthetic ECG was made from; ``""`` where it is unknown.

    Unlike the three-way protocol, a partly unknown lineage is not an error here: a synthetic ECG
    whose source is unknown is simply never eligible (only sources inside a cell's training
    records are). Fully unknown lineage is an error, since no synthetic ECG could be used.
    """
    ids, are_groups = lineage(synthetic, sources)
    if are_groups:
        return ids
    if ids is None:
        raise ValidationError(
            "augmentation-curve: the synthetic ECGs carry no link to their sources (meta patient_id / source_id or "
            "an aligned sources batch), so none can be shown to come from the training side; evaluate a bank made "
            "by the pipeline (it records each source) or pass sources"
        )
    lookup: dict[str, str] = {}
    for batch in (real, pool):
        groups, _ = groups_of(batch)
        for col in [batch.ids, *(batch.meta[k] for k in RECORD_KEYS if k in batch.meta)]:
            lookup.update(zip(np.asarray(col, dtype=object).astype(str).tolist(), groups.tolist()))
    return np.asarray([lookup.get(s, "") for s in ids.tolist()], dtype=str)


class AugmentationCurveEvaluator:
    """``augmentation-curve``: real / oversampled / classical / synthetic training across real fractions."""

    name = "augmentation-curve"

    def __init__(
        self, classifiers: Any = ("rr-features", "afib-reslstm"),
        fractions: Sequence[float] = (0.05, 0.1, 0.25, 0.5, 1.0), seeds: int = 5,
        conditions: Sequence[str] = CONDITIONS, n_synthetic: int | str = "balance", minority: str | None = None,
        val_fraction: float = 0.15, max_epochs: int | None = None, patience: int | None = None,
        batch_size: int | None = None, lr: float | None = None, max_steps_per_epoch: int | None = None,
        train_options: Mapping[str, Any] | None = None,
        augmenters: Sequence[str] = DEFAULT_AUGMENTERS, alpha: float = 0.05, low_fractions_upto: float = 0.25,
        registry: Registry | None = None,
    ) -> None:
        self.classifiers = parse_classifiers(classifiers, what="augmentation-curve classifiers")
        self.fractions = tuple(sorted({float(f) for f in fractions}))
        if not self.fractions or not all(0 < f <= 1 for f in self.fractions):
            raise ValidationError(f"augmentation-curve fractions {list(fractions)} must lie in (0, 1] (1 = all records)")
        self.seeds = int(seeds)
        if self.seeds < 1:
            raise ValidationError(f"augmentation-curve seeds={seeds}; use at least 1 (3 or more for paired tests)")
        self.conditions = tuple(require_choice("augmentation-curve condition", c, CONDITIONS) for c in conditions)
        if "real" not in self.conditions or len(set(self.conditions)) != len(self.conditions):
            raise ValidationError(f"augmentation-curve conditions {list(conditions)} must include 'real', once each")
        self.conditions = tuple(c for c in CONDITIONS if c in self.conditions)
        if not (n_synthetic == "balance" or (isinstance(n_synthetic, int) and n_synthetic >= 0)):
            raise ValidationError(f"augmentation-curve n_synthetic={n_synthetic!r}; use 'balance' or a count >= 0")
        self.n_synthetic, self.minority = n_synthetic, minority
        self.val_fraction = float(val_fraction)
        named = {"max_epochs": max_epochs, "patience": patience, "batch_size": batch_size, "lr": lr,
                 "max_steps_per_epoch": max_steps_per_epoch}
        options = dict(train_options or {})
        clash = set(options) & set(named)
        if clash:
            raise ValidationError(f"augmentation-curve train_options repeat {sorted(clash)}; set them as parameters")
        try:  # unset values keep TrainSettings' defaults (early stopping on validation within a budget)
            self.train_settings = TrainSettings(**{k: v for k, v in named.items() if v is not None}, **options)
        except TypeError as exc:
            raise ValidationError(f"augmentation-curve train_options {options}: {exc}") from exc
        self.augmenters = tuple(augmenters)
        if not 0 < alpha < 1:
            raise ValidationError(f"augmentation-curve alpha={alpha} must lie in (0, 1)")
        self.alpha, self.low_upto = float(alpha), float(low_fractions_upto)
        self._registry = registry

    def settings(self) -> dict[str, Any]:
        """What every cell's training depends on (classifier, fraction, condition and seed are in its name)."""
        return {"n_synthetic": self.n_synthetic, "minority": self.minority, "val_fraction": self.val_fraction,
                "train": attrs.asdict(self.train_settings), "augmenters": list(self.augmenters)}

    def seed_values(self, base: int) -> list[int]:
        """Seed k's value depends only on (base, k): raising ``seeds`` keeps the finished cells."""
        return [int(derive_seeds(base, 1, offset=k)[0] % 2**31) for k in range(self.seeds)]

    # ---- input checks and planning (index arithmetic only, before any training) ---------------
    def check(self, pool: ECGBatch, real: ECGBatch, synthetic: ECGBatch,
              externals: Sequence[ExternalSet]) -> int:
        """Refuse inputs that cannot give a meaningful curve; returns the minority class index."""
        y = check_labelled(pool, "training pool (context.train)")
        y_test = check_labelled(real, "real test")
        names = pool.class_names
        if len(names) < 2:
            raise ValidationError(f"the training pool has class_names {names}; the curve needs two or more classes")
        batches = [("real test", real), ("synthetic", synthetic)] + [(f"external {e.name!r}", e.batch) for e in externals]
        for what, b in batches:
            for field in ("fs", "leads", "n_samples"):
                if getattr(b, field) != getattr(pool, field):
                    raise ValidationError(f"the {what} set differs from the training pool in {field}: "
                                          f"{getattr(b, field)!r} vs {getattr(pool, field)!r}; preprocess both the same way")
            if what != "synthetic" and b.class_names and b.class_names != names:
                raise ValidationError(f"the {what} set has classes {b.class_names}, the training pool {names}")
        minority = self._minority(y, groups_of(pool)[0], names)
        if not set(range(len(names))) <= set(np.unique(y_test).tolist()):
            raise ValidationError(f"the real test set lacks class(es) of {names}; AUROC needs every class")
        if "synthetic" in self.conditions:
            if synthetic.class_names != names:
                raise ValidationError(f"synthetic class_names {synthetic.class_names} differ from the training pool's "
                                      f"{names}; map them onto the same classes first")
            if len(synthetic) == 0 or synthetic.labels is None or not np.any(synthetic.labels == minority):
                raise ValidationError(f"the synthetic set has no ECGs of the minority class {names[minority]!r}; "
                                      "generate some (the synthetic condition adds only that class)")
        for e in externals:
            self._check_external(e, names)
        return minority

    def _minority(self, y: np.ndarray, groups: np.ndarray, names: tuple[str, ...]) -> int:
        if self.minority is not None:
            return names.index(require_choice("augmentation-curve minority", self.minority, names))
        records = [len(np.unique(groups[y == c])) for c in range(len(names))]
        return int(np.argmin(records))

    @staticmethod
    def _check_external(e: ExternalSet, names: tuple[str, ...]) -> None:
        if e.one_class is None:
            if e.batch.labels is None or len(np.unique(e.batch.labels)) < 2:
                raise ValidationError(f"external set {e.name!r} has no one_class and not two labelled classes; "
                                      "set one_class for a one-class database")
            return
        k = names.index(require_choice(f"external set {e.name!r} one_class", e.one_class, names))
        if e.batch.labels is not None and np.any(e.batch.labels != k):
            raise ValidationError(f"external set {e.name!r} is declared one-class {e.one_class!r} but has other labels")

    def plan(self, pool: ECGBatch, real: ECGBatch, synthetic: ECGBatch, sources: ECGBatch | None,
             seed: int) -> tuple[list[CellPlan], np.ndarray]:
        """Every (fraction, seed) cell's indices, and the synthetic ECGs' source groups."""
        minority = self.check(pool, real, synthetic, ())
        groups, _ = groups_of(pool)
        syn_groups = (source_groups(pool, real, synthetic, sources) if "synthetic" in self.conditions
                      else np.full(len(synthetic), "", dtype=str))
        syn_y = synthetic.labels if synthetic.labels is not None else np.full(len(synthetic), -1)
        syn_ok = (syn_y == minority) & ~np.isin(syn_groups, np.unique(groups_of(real)[0]))
        plans = []
        for k, s in enumerate(self.seed_values(seed)):
            rest, val = holdout(pool.labels, self.val_fraction, s, groups, "training pool (context.train)")
            ok = syn_ok & ~np.isin(syn_groups, np.unique(groups[val]))
            order = numpy_rng(s, Stream.AFIB_CURVE_GROUPS).permutation(np.unique(groups[rest][pool.labels[rest] == minority]))
            if len(order) == 0:
                raise ValidationError(f"seed {k}: the validation split took every {pool.class_names[minority]!r} "
                                      "record of the training pool; lower val_fraction or add records")
            plans.extend(self._cell(f, k, s, pool.labels, groups, rest, val, order, ok, syn_groups, minority)
                         for f in self.fractions)
        return plans, syn_groups

    def _cell(self, fraction: float, k: int, seed: int, y: np.ndarray, groups: np.ndarray, rest: np.ndarray,
              val: np.ndarray, order: np.ndarray, syn_ok: np.ndarray, syn_groups: np.ndarray, minority: int) -> CellPlan:
        chosen = order[: max(1, int(round(fraction * len(order))))]
        real = rest[(y[rest] != minority) | np.isin(groups[rest], chosen)]
        eligible = np.flatnonzero(syn_ok & np.isin(syn_groups, np.unique(groups[real])))
        minority_idx = real[y[real] == minority]
        if self.n_synthetic == "balance":
            target = max(int(np.max(np.bincount(y[real][y[real] != minority]))) - len(minority_idx), 0)
        else:
            target = int(self.n_synthetic)
        n_add = min(target, len(eligible))
        fkey = int(round(fraction * 1e6))
        picked = np.sort(numpy_rng(seed, Stream.AFIB_CURVE_PICK, fkey).choice(eligible, n_add, replace=False))
        perm = numpy_rng(seed, Stream.AFIB_CURVE_ORDER, fkey).permutation(len(minority_idx))
        duplicates = minority_idx[perm[np.arange(n_add) % max(len(perm), 1)]] if n_add else minority_idx[:0]
        return CellPlan(fraction, k, seed, real, val, len(chosen), len(order), duplicates, picked,
                        len(eligible), target)

    # ---- running --------------------------------------------------------------------------------
    def evaluate(self, real: ECGBatch, synthetic: ECGBatch, *, sources: ECGBatch | None = None,
                 context: EvalContext = EvalContext()) -> EvaluationResult:
        if context.train is None:
            raise ValidationError("augmentation-curve trains classifiers on the run's training split and tests them "
                                  "on a held-out one: pass EvalContext(train=...) (the pipeline does when the run has "
                                  "a test split)")
        pool, externals = context.train, tuple(context.external)
        minority = self.check(pool, real, synthetic, externals)
        plans, syn_groups = self.plan(pool, real, synthetic, sources, int(context.seed))
        registry = self._registry or Registry.discover()
        for spec in self.classifiers:
            registry.get("classifier", spec.name)  # an unknown classifier fails before any training
        device = resolve_device(context.device)
        key = self._key(pool, real, synthetic, externals, syn_groups, int(context.seed))
        store = store_for(context.workdir, self.name, key)
        runs = [(plan, spec, cond) for plan in plans for spec in self.classifiers for cond in self.conditions]
        done = {self.run_name(s, p, c): store.get(self.run_name(s, p, c)) for p, s, c in runs}
        augment = None
        if any(found is None and c == "classical" for (_, _, c), found in zip(runs, done.values())):
            from augframe_afib.classical import ClassicalAugment  # torch-ecg: imported only when needed

            augment = ClassicalAugment(pool.fs, self.augmenters)
        data = {"pool": pool.numpy(), "synthetic": synthetic.numpy(),
                "tests": {"test": real.numpy(), **{f"ext{i}": e.batch.numpy() for i, e in enumerate(externals)}}}
        cells: dict[tuple[str, float, str, int], tuple[dict[str, Any], dict[str, np.ndarray]]] = {}
        added: dict[str, np.ndarray] = {}  # the current plan's added windows, shared by its classifiers
        trained, t0, current = 0, time.perf_counter(), None
        for plan, spec, cond in runs:
            run = self.run_name(spec, plan, cond)
            found = done[run]
            if found is None:
                if current is not plan:
                    added, current = {}, plan
                if cond not in added:
                    added[cond] = self._added(plan, cond, data, minority, augment)
                extra = added[cond]
                model = build_classifier(registry, spec.name, spec.params, class_names=pool.class_names,
                                         n_leads=pool.n_leads, fs=pool.fs, seed=plan.seed)
                found = self._train(model, plan, extra, data, pool.labels, minority, device, run, store, context)
                found[0].update(classifier=spec.label, condition=cond)
                store.put(run, *found)
                trained += 1
            cells[(spec.label, plan.fraction, cond, plan.seed_index)] = found
        seconds = time.perf_counter() - t0
        return self._result(real, synthetic, externals, minority, plans, syn_groups, cells, context,
                            {"key": key, "trained": trained, "seconds": seconds})

    def _train(self, model: Any, plan: CellPlan, extra: np.ndarray, data: Mapping[str, Any], labels: np.ndarray,
               minority: int, device: str, run: str, store: Any, context: EvalContext) -> tuple[dict, dict]:
        """Train one cell on the plan's real windows plus ``extra`` (minority) windows; test it."""
        xp = data["pool"]
        x = np.concatenate([xp[plan.real], extra])
        y = np.concatenate([labels[plan.real], np.full(len(extra), minority, dtype=labels.dtype)])
        rec, arrays = train_and_test(model, (x, y), (xp[plan.val], labels[plan.val]), data["tests"],
                                     self.train_settings, seed=plan.seed, device=device, desc=run,
                                     show_progress=context.progress, state_path=store.state_path(run))
        rec = {k: v for k, v in rec.items() if k != "history"}
        rec.update(fraction=plan.fraction, seed=plan.seed, n_added=len(extra), minority_records=plan.minority_records)
        return rec, arrays

    def run_name(self, spec: ClassifierSpec, plan: CellPlan, cond: str) -> str:
        return f"{spec.tag}_f{int(round(plan.fraction * 1e6))}_{cond}_s{plan.seed_index}"

    def _added(self, plan: CellPlan, cond: str, data: Mapping[str, Any], minority: int, augment: Any) -> np.ndarray:
        """The windows a condition adds to the real training set (none for ``real``)."""
        xp = data["pool"]
        if cond == "real":
            return xp[:0]
        if cond == "synthetic":
            return data["synthetic"][plan.synthetic]
        dup = xp[plan.duplicates]
        if cond == "oversampled" or len(dup) == 0:
            return dup
        import torch

        out = np.empty_like(dup)
        chunk = 256
        seeds = derive_seeds(plan.seed, -(-len(dup) // chunk), offset=int(round(plan.fraction * 1e6)) << 20)
        for j, start in enumerate(range(0, len(dup), chunk)):
            xb = torch.from_numpy(np.ascontiguousarray(dup[start:start + chunk]))
            yb = torch.full((len(xb),), minority, dtype=torch.long)
            out[start:start + chunk] = augment(xb, yb, int(seeds[j])).numpy()
        return out

    def _key(self, pool: ECGBatch, real: ECGBatch, synthetic: ECGBatch, externals: Sequence[ExternalSet],
             syn_groups: np.ndarray, seed: int) -> str:
        def digest(values: np.ndarray) -> str:
            return hashlib.sha256("\x00".join(values.tolist()).encode()).hexdigest()[:16]

        ext = [(e.name, e.one_class, fingerprint(e.batch)) for e in externals]
        return settings_key(self.settings(), fingerprint(pool), digest(groups_of(pool)[0]), fingerprint(real),
                            digest(groups_of(real)[0]), fingerprint(synthetic), digest(syn_groups), ext, seed)

    # ---- results ----------------------------------------------------------------------------------
    def _result(self, real: ECGBatch, synthetic: ECGBatch, externals: Sequence[ExternalSet], minority: int,
                plans: list[CellPlan], syn_groups: np.ndarray, cells: Mapping, context: EvalContext,
                run: Mapping[str, Any]) -> EvaluationResult:
        names = real.class_names
        values = {k: cell_metrics(arrays, real.labels, externals, minority, names) for k, (_, arrays) in cells.items()}
        metric_keys = list(next(iter(values.values())))
        metrics: dict[str, float] = {}
        tables: dict[str, Table] = {}
        judges = {spec.label: self._independence(spec, context) for spec in self.classifiers}
        notes = [note for note, _ in judges.values()]
        headline, panels = [], []
        diffs_by_spec = {}
        for spec in self.classifiers:
            per = self._series(spec, values, metric_keys)
            diffs = self._differences(per, metric_keys)
            diffs_by_spec[spec.label] = diffs
            self._fill_metrics(metrics, spec, per, diffs)
            tables[f"summary_{spec.label}"] = self._summary_table(spec, per, plans, cells, externals, metric_keys)
            tables[f"paired_tests_{spec.label}"] = self._tests_table(diffs)
            text, card = self._verdict(spec, diffs)
            notes.append(text)
            headline.append({**card, "judge": judges[spec.label][1].to_dict()})
            panels += [{"title": f"{spec.label}: {shown} on held-out real", "ylabel": shown,
                        "series": {c: ([np.mean(per[(f, c)][m]) for f in self.fractions],
                                       [_sd(per[(f, c)][m]) for f in self.fractions]) for c in self.conditions}}
                       for m, shown in (("auroc", "AUROC"), ("f1", "F1"))]
        notes += self._design_notes(plans, syn_groups, synthetic, minority, names, cells)
        from augframe.report.svg import line_plot

        figure = line_plot(panels, x=self.fractions, x_labels=[_pct(f) for f in self.fractions],
                           xlabel=f"real fraction of the {names[minority]} records in training", log_x=True, y_clip=(0.0, 1.0),
                           caption=f"Mean +- SD over {self.seeds} seed(s), tested on held-out real ECGs; one line per "
                                   "training condition (" + "; ".join(f"{c}: {CONDITION_TEXT[c]}" for c in
                                                                    self.conditions) + "), one row per classifier.")
        n_cells = len(self.classifiers) * len(self.fractions) * len(self.conditions) * self.seeds
        own_fit = sorted({k[0] for k, (rec, _) in cells.items() if rec.get("trainer") == "fit"})
        budget = self._budget() + (f" (gradient training; {', '.join(own_fit)} fitted by their own fit)"
                                   if own_fit else "")
        ext_text = ", ".join(f"{e.name} ({len(e.batch)}, {e.one_class or 'two-class'})" for e in externals) or "none"
        scale = (f"{n_cells} cells = {len(self.classifiers)} classifier(s) x {len(self.fractions)} fractions x "
                 f"{len(self.conditions)} conditions x {self.seeds} seed(s); training pool {len(context.train)} "
                 f"windows ({plans[0].minority_available} {names[minority]} records after validation), real test "
                 f"{len(real)}, external: {ext_text}; {budget}; "
                 f"{run['trained']} cells trained in this call, {len(cells) - run['trained']} resumed; "
                 f"{run['seconds']:.0f} s")
        details = {
            "title": "Augmentation curve: real / oversampled / classical / synthetic training vs real data",
            "section": "utility", "headline": headline, "resume_key": run["key"], "seed": int(context.seed),
            "judges": {label: ind.to_dict() for label, (_, ind) in judges.items()},
            "settings": {**self.settings(), "classifiers": [attrs.asdict(s) for s in self.classifiers],
                         "fractions": list(self.fractions), "seeds": self.seeds, "conditions": list(self.conditions)},
            "cells": {self.run_name(s, p, c): {**cells[(s.label, p.fraction, c, p.seed_index)][0],
                                               "seed_index": p.seed_index,
                                               "metrics": values[(s.label, p.fraction, c, p.seed_index)]}
                      for s in self.classifiers for p in plans for c in self.conditions},
            "paired": {label: {f"{_pct(f)} {a}-{b} {m}": attrs.asdict(d) for (f, a, b, m), d in diffs.items()}
                       for label, diffs in diffs_by_spec.items()},
        }
        return EvaluationResult(name=self.name, metrics=metrics, tables=tables, figures={"curve": figure},
                                notes=notes, scale=scale, details=details)

    def _series(self, spec: ClassifierSpec, values: Mapping, metric_keys: list[str]) -> dict:
        """(fraction, condition) -> metric -> array over seeds (seed order, so conditions pair)."""
        return {(f, c): {m: np.array([values[(spec.label, f, c, k)][m] for k in range(self.seeds)])
                         for m in metric_keys}
                for f in self.fractions for c in self.conditions}

    def _differences(self, per: Mapping, metric_keys: list[str]) -> dict:
        return {(f, a, b, m): paired_difference(per[(f, a)][m], per[(f, b)][m])
                for f in self.fractions for a, b in COMPARISONS
                if a in self.conditions and b in self.conditions for m in metric_keys}

    def _fill_metrics(self, metrics: dict[str, float], spec: ClassifierSpec, per: Mapping, diffs: Mapping) -> None:
        for (f, c), by_metric in per.items():
            for m, v in by_metric.items():
                metrics[f"{spec.label}.{_pct(f)}.{c}.{m}.mean"] = float(np.mean(v))
                metrics[f"{spec.label}.{_pct(f)}.{c}.{m}.sd"] = _sd(v)
        for (f, a, b, m), d in diffs.items():
            tag = f"{spec.label}.{_pct(f)}.{a}-{b}.{m}"
            metrics[f"{tag}.diff"], metrics[f"{tag}.diff_sd"] = d.mean, d.sd
            metrics[f"{tag}.t_p"] = float("nan") if d.t_p is None else d.t_p
            metrics[f"{tag}.wilcoxon_p"] = float("nan") if d.wilcoxon_p is None else d.wilcoxon_p

    def _summary_table(self, spec: ClassifierSpec, per: Mapping, plans: list[CellPlan], cells: Mapping,
                       externals: Sequence[ExternalSet], metric_keys: list[str]) -> Table:
        ext_keys = [m for m in metric_keys if m not in TEST_METRICS]
        rows = []
        for f in self.fractions:
            fp = [p for p in plans if p.fraction == f]
            for c in self.conditions:
                recs = [cells[(spec.label, f, c, p.seed_index)][0] for p in fp]
                capped = sum(bool(r.get("hit_cap", False)) for r in recs)
                rows.append([_pct(f), _span([p.minority_records for p in fp]), c,
                             _span([0 if c == "real" else p.n_added for p in fp]), _span([r["n_train"] for r in recs]),
                             *(_pm(per[(f, c)][m]) for m in (*TEST_METRICS, *ext_keys)), f"{capped}/{len(recs)}"])
        return Table(["real fraction", "minority records", "condition", "added", "training windows", "AUROC", "F1",
                      "sensitivity", "specificity", *ext_keys, "runs at budget cap"], rows,
                     caption=f"{spec.label}: mean +- SD over {self.seeds} seed(s); AUROC/F1/sensitivity/specificity on "
                             "the held-out real test set, external sets as named (one-class sets report only "
                             "sensitivity or specificity).")

    def _tests_table(self, diffs: Mapping) -> Table:
        rows = []
        for f in self.fractions:
            for a, b in COMPARISONS:
                if (f, a, b, "auroc") not in diffs:
                    continue
                row = [_pct(f), f"{a} - {b}"]
                for m in ("auroc", "f1"):
                    d = diffs[(f, a, b, m)]
                    row += [f"{d.mean:+.4f} +- {d.sd:.4f}", _p(d.t_p), _p(d.wilcoxon_p)]
                rows.append(row)
        return Table(["real fraction", "difference", "AUROC diff (mean +- SD)", "AUROC p (paired t)",
                      "AUROC p (Wilcoxon)", "F1 diff (mean +- SD)", "F1 p (paired t)", "F1 p (Wilcoxon)"], rows,
                     caption=f"Paired across seeds (the same seed = the same records and validation split); "
                             f"'{NOT_TESTABLE}' with fewer than 3 seeds. No correction for multiple comparisons.")

    def _verdict(self, spec: ClassifierSpec, diffs: Mapping) -> tuple[str, dict[str, Any]]:
        """Does synthetic beat both real-only and oversampling on AUROC (p < alpha) at the low fractions?"""
        low = [f for f in self.fractions if f <= self.low_upto] or [self.fractions[0]]
        label = f"{spec.label}: synthetic vs real-only and oversampling (AUROC, low fractions)"
        if "synthetic" not in self.conditions or "oversampled" not in self.conditions:
            return (f"{spec.label}: no verdict (the synthetic and oversampled conditions are both needed)",
                    {"label": label, "value": "no verdict", "status": "neutral", "note": "conditions left out"})
        first = diffs[(low[0], "synthetic", "real", "auroc")], diffs[(low[0], "synthetic", "oversampled", "auroc")]
        note = (f"at {_pct(low[0])}: synthetic - real {first[0].mean:+.3f}, synthetic - oversampled "
                f"{first[1].mean:+.3f} AUROC")
        if not first[0].testable:
            return (f"{spec.label}: whether synthetic beats both controls is {NOT_TESTABLE}; {note}.",
                    {"label": label, "value": NOT_TESTABLE, "status": "warn", "note": note})
        beats = [f for f in low if all(diffs[(f, "synthetic", b, "auroc")].mean > 0
                                       and diffs[(f, "synthetic", b, "auroc")].t_p < self.alpha
                                       for b in ("real", "oversampled"))]
        rest = [f for f in low if f not in beats]
        if beats:
            text = (f"{spec.label}: synthetic ECGs beat BOTH real-only and oversampling on AUROC (paired t-test "
                    f"p < {self.alpha}) at {', '.join(map(_pct, beats))}"
                    + (f"; NOT at {', '.join(map(_pct, rest))}" if rest else "") + f". {note[0].upper()}{note[1:]}.")
        else:
            text = (f"{spec.label}: synthetic ECGs do NOT beat both real-only and oversampling on AUROC at the low "
                    f"fractions ({', '.join(map(_pct, low))}; paired t-test, p < {self.alpha} required). "
                    f"{note[0].upper()}{note[1:]}.")
        status = "good" if len(beats) == len(low) else ("warn" if beats else "bad")
        value = (f"beats both at {', '.join(map(_pct, beats))}" if beats else "does not beat both")
        return text, {"label": label, "value": value, "status": status, "note": note}

    def _budget(self) -> str:
        ts = self.train_settings
        caps = [f"{v} {unit}" for v, unit in ((getattr(ts, "max_steps", None), "steps"), (ts.max_epochs, "epochs"))
                if v is not None]
        return (f"early stopping on validation {getattr(ts, 'monitor', 'loss')} (patience {ts.patience} epochs) "
                f"within at most {' / '.join(caps)}")

    @staticmethod
    def _independence(spec: ClassifierSpec, context: EvalContext) -> tuple[str, Independence]:
        """The note naming a classifier and its independence (trained here = independent of the generator)."""
        params = " ".join(([spec.name] if spec.label != spec.name else []) + ([str(dict(spec.params))] if spec.params
                                                                             else []))
        params = f" ({params})" if params else ""
        ref = judge_ref(spec.name, spec.params, role="augmentation-curve")
        if any(k in spec.params for k in WEIGHT_PARAMS):
            ind = context.independence(ref)
            return (f"Classifier {spec.label}{params} starts from given weights and is then trained on "
                    f"the run's training split in every cell: {ind.label} ({ind.reason})."), ind
        ind = Independence(ref, True, "trained here from scratch on the run's training split")
        return (f"Classifier {spec.label}{params} is trained from scratch on the run's training split "
                "in every cell, so it is an independent judge of the generator."), ind

    def _design_notes(self, plans: list[CellPlan], syn_groups: np.ndarray, synthetic: ECGBatch, minority: int,
                      names: tuple[str, ...], cells: Mapping) -> list[str]:
        notes = [f"Seeds pair the cells: a seed fixes the validation split ({self.val_fraction:.0%} of the training "
                 "pool, grouped by record/patient, the same for every fraction) and the order in which "
                 f"{names[minority]} records are drawn, so the fractions are nested and every condition and "
                 "classifier of a seed trains on the same real windows. The verdict uses the paired t-test."]
        if "synthetic" in self.conditions:
            n_min = int(np.sum(synthetic.labels == minority))
            unknown = int(np.sum((synthetic.labels == minority) & (syn_groups == "")))
            notes.append(f"Synthetic condition: of {n_min} {names[minority]} synthetic ECGs, a cell uses only those "
                         "whose source record is among that cell's training records (never a validation or test "
                         f"record's); eligible per cell {_span([p.eligible for p in plans])}"
                         + (f"; {unknown} with an unknown source were never used" if unknown else "") + ".")
            notes.append("The generator was made from the run's whole training split, so at a low fraction the "
                         "synthetic ECGs can carry information from minority records that fraction's real set leaves "
                         "out: the curve values the synthetic data as made, not a generator trained on the fraction.")
            short = sorted({_pct(p.fraction) for p in plans if p.n_added < p.target})
            if short:
                notes.append(f"The bank could not fill the requested synthetic count ({self.n_synthetic}) at "
                             f"{', '.join(short)}: the synthetic, oversampled and classical conditions add what the "
                             "bank had (the same count each).")
        if self.seeds < 6:
            notes.append(f"With {self.seeds} seed(s) the two-sided Wilcoxon signed-rank test cannot go below p = "
                         f"{2 / 2 ** self.seeds:.3g}; it is reported beside the paired t-test, not used for the verdict.")
        capped = sum(bool(r.get("hit_cap", False)) for r, _ in cells.values())
        if capped:
            notes.append(f"{capped} of {len(cells)} cells were still improving when the training budget ran out "
                         f"({self._budget()}); raise it before trusting those cells.")
        single = [k for k, (_, a) in cells.items() if len(np.unique(a["proba_test"].argmax(1))) < 2]
        if single:
            notes.append(f"{len(single)} cell(s) predicted one class for every test ECG (degenerate), e.g. "
                         f"{single[0][0]} {_pct(single[0][1])} {single[0][2]} seed {single[0][3]}.")
        return notes


def cell_metrics(arrays: Mapping[str, np.ndarray], y_test: np.ndarray, externals: Sequence[ExternalSet],
                 positive: int, names: tuple[str, ...]) -> dict[str, float]:
    """AUROC, F1, sensitivity, specificity on the test set; per external set, only what it can measure.

    A one-class external set reports sensitivity (its class is the positive one) or specificity
    (any other class), never a pooled AUROC: the class would coincide with the database.
    """
    m = classification_metrics(y_test, arrays["proba_test"], positive)
    out = {"auroc": m["auroc"], "f1": m["f1"], "sensitivity": m["recall"], "specificity": m["specificity"]}
    for i, e in enumerate(externals):
        proba = arrays[f"proba_ext{i}"]
        positive_pred = proba.argmax(1) == positive
        if e.one_class is None:
            em = classification_metrics(e.batch.labels, proba, positive)
            out.update({f"{e.name} {k}": em[src] for k, src in (("AUROC", "auroc"), ("sensitivity", "recall"),
                                                                  ("specificity", "specificity"))})
        elif e.one_class == names[positive]:
            out[f"{e.name} sensitivity"] = float(np.mean(positive_pred))
        else:
            out[f"{e.name} specificity"] = float(np.mean(~positive_pred))
    return out


def _sd(v: np.ndarray) -> float:
    v = np.asarray(v, dtype=np.float64)
    return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def _pm(v: np.ndarray) -> str:
    return f"{np.mean(v):.3f} +- {_sd(v):.3f}"


def _pct(f: float) -> str:
    return f"{100 * f:g}%"


def _span(values: Sequence[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _p(p: float | None) -> str:
    if p is None:
        return NOT_TESTABLE
    if not np.isfinite(p):
        return "-"
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


__all__ = ["AugmentationCurveEvaluator", "CellPlan", "ClassifierSpec", "PairedDifference", "cell_metrics",
           "paired_difference", "parse_classifiers", "source_groups"]
