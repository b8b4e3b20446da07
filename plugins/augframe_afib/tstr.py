"""TSTR / TRTS: train on synthetic and test on real, and the reverse, against the real-only baseline (TRTR).

One seeded, patient/record-grouped split of the real ECGs into train / validation / test. TRTR
trains on real and tests on the real test part; TRTS tests that same model on the synthetic ECGs;
TSTR trains on synthetic (early stopping on a synthetic validation part) and tests on the real test
part. Synthetic ECGs made from real test patients are left out of TSTR training when the link is
known. F1 is for the positive class (AF); macro F1, accuracy and AUROC are reported beside it.

``matched_real`` adds TRTR-matched: the same classifier trained on a draw of the real training part
with as many ECGs of each class as TSTR trains on, so a gap between TSTR and TRTR can be told apart
into "synthetic ECGs carry less" and "this many ECGs are too few".

``repeats`` draws that split (and the training seed) again ``repeats`` times and reports mean +- SD;
``classifiers`` runs several registry classifiers on the same splits, each with its own rows and
``<label>/<key>`` metrics (the first classifier's also without the prefix).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from augframe.errors import ValidationError
from augframe.plugins import Registry
from augframe.protocols import EvalContext, EvaluationResult, Table
from augframe.seeding import Stream, numpy_rng
from augframe.signals import ECGBatch
from augframe.training import resolve_device

from augframe_afib.fit import TrainSettings
from augframe_afib.inputs import check_compatible, fingerprint, groups_of, synthetic_groups
from augframe_afib.metrics import METRICS, classification_metrics
from augframe_afib.runs import ClassifierSpec, build_classifier, classifier_specs, settings_key, store_for, train_and_test
from augframe_afib.splits import holdout

#: (tag, training run, test set, text of the test set)
SETTINGS = (("TRTR", "train_real", "real", "real (baseline)"),
            ("TRTS", "train_real", "synthetic", "synthetic"),
            ("TSTR", "train_synthetic", "real", "real"))
#: trained on as many real ECGs of each class as TSTR trains on
MATCHED = ("TRTR-matched", "train_real_matched", "real", "real")


@attrs.frozen(eq=False)
class Split:
    """One repeat's index sets: real train / validation / test and synthetic train / validation."""

    real_tr: np.ndarray
    real_va: np.ndarray
    test: np.ndarray
    syn_tr: np.ndarray
    syn_va: np.ndarray
    notes: tuple[str, ...]
    real_matched: np.ndarray | None = None


class TSTREvaluator:
    """``tstr``: TSTR, TRTS and the TRTR baseline with one or more classifiers from the registry."""

    name = "tstr"

    def __init__(
        self, classifier: str = "afib-reslstm", classifier_params: Mapping[str, Any] | None = None,
        classifiers: Sequence[str | Mapping[str, Any]] | None = None, repeats: int = 1,
        max_steps: int | None = None, max_epochs: int | None = None, patience: int | None = None,
        batch_size: int | None = None, lr: float | None = None, max_steps_per_epoch: int | None = None,
        balance: str | None = None, monitor: str | None = None, test_fraction: float = 0.2,
        val_fraction: float = 0.15, positive_class: int = 1, matched_real: bool = False,
        registry: Registry | None = None,
    ) -> None:
        self.specs = classifier_specs(classifier, classifier_params, classifiers)
        if int(repeats) < 1:
            raise ValidationError(f"tstr repeats={repeats} must be >= 1")
        self.repeats = int(repeats)
        given = dict(max_steps=max_steps, max_epochs=max_epochs, patience=patience, batch_size=batch_size, lr=lr,
                     max_steps_per_epoch=max_steps_per_epoch, balance=balance, monitor=monitor)
        self.train_settings = TrainSettings(**{k: v for k, v in given.items() if v is not None})
        self.test_fraction, self.val_fraction = float(test_fraction), float(val_fraction)
        self.positive = int(positive_class)
        self.matched_real = bool(matched_real)
        self.settings_rows = SETTINGS + ((MATCHED,) if self.matched_real else ())
        self._registry = registry

    def settings(self) -> dict[str, Any]:
        """What every stored run depends on (the run, e.g. ``train_real_matched``, is in its name)."""
        return {"classifiers": [c.settings() for c in self.specs], "repeats": self.repeats,
                "train": attrs.asdict(self.train_settings), "test_fraction": self.test_fraction,
                "val_fraction": self.val_fraction}

    def split(self, real: ECGBatch, synthetic: ECGBatch, sources: ECGBatch | None, seed: int) -> Split:
        """The grouped real split and the leak-free synthetic split of one repeat."""
        groups, field = groups_of(real)
        trval, test = holdout(real.labels, self.test_fraction, seed, groups, "real")
        tr_i, va_i = holdout(real.labels[trval], self.val_fraction, seed + 1, groups[trval], "real training")
        real_tr, real_va = trval[tr_i], trval[va_i]
        syn_groups = synthetic_groups(real, synthetic, sources)
        syn_pool = np.arange(len(synthetic))
        notes = [f"real split grouped by {field if field != 'ids' else 'record id'}: {len(real_tr)} train, "
                 f"{len(real_va)} validation, {len(test)} test ECGs"]
        if syn_groups is not None:
            keep = ~np.isin(syn_groups, np.unique(groups[test]))
            syn_pool = np.flatnonzero(keep)
            if (~keep).any():
                notes.append(f"{int((~keep).sum())} synthetic ECGs made from real test patients were left out of "
                             "TSTR training")
        else:
            notes.append("synthetic ECGs carry no link to their sources: leakage into the real test set could not "
                         "be excluded")
        s_tr, s_va = holdout(synthetic.labels[syn_pool], self.val_fraction, seed + 2, what="synthetic")
        syn_tr = syn_pool[s_tr]
        matched = _matched_draw(real.labels, real_tr, synthetic.labels[syn_tr], seed + 3) if self.matched_real else None
        return Split(real_tr, real_va, test, syn_tr, syn_pool[s_va], tuple(notes), matched)

    def evaluate(self, real: ECGBatch, synthetic: ECGBatch, *, sources: ECGBatch | None = None,
                 context: EvalContext = EvalContext()) -> EvaluationResult:
        names = check_compatible(real, synthetic)
        seed = int(context.seed)
        splits = [self.split(real, synthetic, sources, seed + 10 * r) for r in range(self.repeats)]
        registry = self._registry or Registry.discover()
        for spec in self.specs:
            registry.get("classifier", spec.name)
        device = resolve_device(context.device)
        external = {x.name: x for x in context.external}
        store = store_for(context.workdir, self.name,
                          settings_key(self.settings(), fingerprint(real), fingerprint(synthetic), seed,
                                       [(n, x.one_class, fingerprint(x.batch)) for n, x in external.items()]))
        ext_x = {f"ext:{n}": x.batch.numpy() for n, x in external.items()}
        xr, xs, yr, ys = real.numpy(), synthetic.numpy(), real.labels, synthetic.labels
        t0 = time.perf_counter()
        runs: dict[tuple[str, int, str], tuple[dict[str, Any], dict[str, np.ndarray]]] = {}
        for r, sp in enumerate(splits):
            rseed = seed + 10 * r
            for spec in self.specs:
                for run, (tr, va, tests) in {
                    "train_real": ((xr[sp.real_tr], yr[sp.real_tr]), (xr[sp.real_va], yr[sp.real_va]),
                                   {"real": xr[sp.test], "synthetic": xs, **ext_x}),
                    "train_synthetic": ((xs[sp.syn_tr], ys[sp.syn_tr]), (xs[sp.syn_va], ys[sp.syn_va]),
                                        {"real": xr[sp.test], **ext_x}),
                    **({} if sp.real_matched is None else {"train_real_matched": (
                        (xr[sp.real_matched], yr[sp.real_matched]), (xr[sp.real_va], yr[sp.real_va]),
                        {"real": xr[sp.test], **ext_x})}),
                }.items():
                    name = f"{spec.label}.r{r}.{run}"
                    found = store.get(name)
                    if found is None:
                        model = build_classifier(registry, spec.name, spec.params, class_names=names,
                                                 n_leads=real.n_leads, fs=real.fs, seed=rseed)
                        found = train_and_test(model, tr, va, tests, self.train_settings, seed=rseed, device=device,
                                               desc=name, show_progress=context.progress,
                                               state_path=store.state_path(name))
                        store.put(name, *found)
                    runs[(spec.label, r, run)] = found
        notes = list(splits[0].notes)
        if self.repeats > 1:
            notes.append(f"{self.repeats} repeats (split and training seed {seed}, {seed + 10}, ...): figures are "
                         "mean +- SD over repeats")
        metrics: dict[str, float] = {}
        rows, headline = [], []
        several = len(self.specs) > 1
        for i, spec in enumerate(self.specs):
            part = self._summarise_classifier(spec, runs, splits, yr, ys)
            for k, v in part["metrics"].items():
                metrics[f"{spec.label}/{k}"] = v
                if i == 0:
                    metrics[k] = v
            rows += [[spec.label, *row] for row in part["rows"]]
            tag = f"{spec.label}: " if several else ""
            headline += [dict(card, label=tag + card["label"]) for card in part["headline"]]
            notes += [tag + n for n in part["notes"]]
        notes.append("Published reference point: SSSD-ECG reports TSTR/TRTS F1 0.80/0.91 on its own (PTB-XL) data; "
                     "figures from other data and classifiers are not directly comparable.")
        cell = "mean +- SD over repeats" if self.repeats > 1 else "one split"
        tables = {"tstr": Table(["classifier", "setting", "train on", "test on", "n train", "n test", "F1 (AF)",
                                 "macro F1", "accuracy", "AUROC", "best epoch"], rows,
                                caption=f"F1 of the positive class ({cell}); TSTR near TRTR means the synthetic ECGs "
                                        "carry the class information of the real ones"
                                        + ("; TRTR-matched trains on as many real ECGs per class as TSTR"
                                           if self.matched_real else "") + ".")}
        if external:
            tables["external"] = self._external_table(runs, external, names, metrics)
        return EvaluationResult(
            name=self.name, metrics=metrics, tables=tables,
            notes=notes, details={"headline": headline, "title": "Train on synthetic, test on real (TSTR / TRTS)", "section": "utility",
                                  "runs": {f"{lab}.r{r}.{run}": v[0] for (lab, r, run), v in runs.items()},
                                  "seed": seed},
            scale=(f"{len(real)} real / {len(synthetic)} synthetic ECGs, {self.repeats} repeat(s), classifier"
                   f"{'s' if several else ''} {', '.join(c.describe() for c in self.specs)}"
                   f", {self.train_settings.describe()}, {time.perf_counter() - t0:.0f} s"),
        )

    def _external_table(self, runs: dict, external: dict, names: tuple[str, ...], metrics: dict[str, float]) -> Table:
        """External one-class sets: the share called ``one_class`` (sensitivity for AF-only, specificity for
        AF-free); never a pooled AUROC, since the class would coincide with the database."""
        rows = []
        for spec in self.specs:
            for setting, run, test_name, _text in self.settings_rows:
                if test_name != "real":  # TRTS: the real-trained model on synthetic ECGs, not a training run
                    continue
                for n, x in external.items():
                    if x.one_class is None:
                        continue
                    c = names.index(x.one_class)
                    measure = "sensitivity" if c == self.positive else "specificity"
                    vals = [float(np.mean(arrays[f"proba_ext:{n}"].argmax(1) == c))
                            for (lab, _r, rn), (_rec, arrays) in runs.items() if lab == spec.label and rn == run]
                    key = f"{spec.label}/{_key(setting)}.{n}.{measure}"
                    metrics[key] = float(np.mean(vals))
                    rows.append([spec.label, setting, n, measure, len(x.batch), metrics[key]])
        return Table(["classifier", "setting", "external set", "measure", "windows", "value"], rows,
                     caption="External one-class databases (never trained on): the share of windows called the "
                             "database's class.")

    def _summarise_classifier(self, spec: ClassifierSpec, runs: dict, splits: list[Split], yr: np.ndarray,
                              ys: np.ndarray) -> dict[str, Any]:
        """Rows, metrics (unprefixed: mean over repeats, ``.sd`` beside), notes and cards of one classifier."""
        metrics: dict[str, float] = {}
        rows, one_class = [], []
        for tag, run, test_name, test_text in self.settings_rows:
            per = []
            for r, sp in enumerate(splits):
                rec, arrays = runs[(spec.label, r, run)]
                proba = arrays[f"proba_{test_name}"]
                per.append(classification_metrics(yr[sp.test] if test_name == "real" else ys, proba, self.positive))
                if len(np.unique(proba.argmax(1))) < 2:
                    one_class.append(tag if len(splits) == 1 else f"{tag} (repeat {r + 1})")
            for k in METRICS:
                v = np.array([m[k] for m in per])
                metrics[f"{_key(tag)}.{k}"] = float(np.mean(v))
                metrics[f"{_key(tag)}.{k}.sd"] = float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
            first = runs[(spec.label, 0, run)][0]
            n_test = len(splits[0].test) if test_name == "real" else len(ys)
            rows.append([tag, "synthetic" if run == "train_synthetic" else "real", test_text, first["n_train"], n_test,
                         *(self._cell(metrics, tag, k) for k in ("f1", "macro_f1", "accuracy", "auroc")),
                         first["best_epoch"]])
        notes = []
        if one_class:
            notes.append(f"{', '.join(one_class)}: the classifier predicted one class for every test ECG; such a "
                         "degenerate classifier makes the F1 comparison meaningless (train longer or wider)")
        base = metrics["trtr.f1"]
        metrics["tstr_over_trtr.f1"] = metrics["tstr.f1"] / base if base > 0 else float("nan")
        ratio = metrics["tstr_over_trtr.f1"]
        status = "warn" if one_class else ("good" if ratio >= 0.9 else ("warn" if ratio >= 0.75 else "bad"))
        sd = (lambda k: f", SD {metrics[f'{k}.sd']:.3f}") if len(splits) > 1 else (lambda k: "")
        headline = [
            {"label": "TSTR F1 (AF)", "value": f"{metrics['tstr.f1']:.3f}", "status": status,
             "note": f"{100 * ratio:.0f}% of the real-data baseline{sd('tstr.f1')}"},
            {"label": "TRTR F1 (baseline)", "value": f"{base:.3f}", "status": "neutral",
             "note": f"train real, test real{sd('trtr.f1')}"},
            {"label": "TRTS F1", "value": f"{metrics['trts.f1']:.3f}", "status": "neutral",
             "note": f"real-trained model on synthetic ECGs{sd('trts.f1')}"},
        ]
        return {"metrics": metrics, "rows": rows, "notes": notes, "headline": headline}

    def _cell(self, metrics: dict[str, float], tag: str, k: str) -> float | str:
        mean = metrics[f"{_key(tag)}.{k}"]
        if self.repeats == 1:
            return mean
        return f"{mean:.3f} +- {metrics[f'{_key(tag)}.{k}.sd']:.3f}"


def _key(tag: str) -> str:
    """Metric prefix of a setting: 'TRTR-matched' -> 'trtr_matched'."""
    return tag.lower().replace("-", "_")


def _matched_draw(labels: np.ndarray, real_tr: np.ndarray, syn_labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices into the real ECGs: per class, as many of ``real_tr`` as the synthetic training part has
    (all of them where the real part has fewer), drawn with ``seed``."""
    rng = numpy_rng(seed, Stream.TSTR_MATCHED_REAL)
    parts = []
    for c in np.unique(syn_labels):
        pool = real_tr[labels[real_tr] == c]
        parts.append(rng.choice(pool, size=min(len(pool), int(np.sum(syn_labels == c))), replace=False))
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
