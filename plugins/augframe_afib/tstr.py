"""TSTR / TRTS: train on synthetic and test on real, and the reverse, against the real-only baseline (TRTR).

One seeded, patient/record-grouped split of the real ECGs into train / validation / test. TRTR
trains on real and tests on the real test part; TRTS tests that same model on the synthetic ECGs;
TSTR trains on synthetic (early stopping on a synthetic validation part) and tests on the real test
part. Synthetic ECGs made from real test patients are left out of TSTR training when the link is
known. F1 is for the positive class (AF); macro F1, accuracy and AUROC are reported beside it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from augframe.plugins import Registry
from augframe.protocols import EvalContext, EvaluationResult, Table
from augframe.signals import ECGBatch
from augframe.training import resolve_device

from augframe_afib.fit import TrainSettings
from augframe_afib.inputs import check_compatible, fingerprint, groups_of, synthetic_groups
from augframe_afib.metrics import classification_metrics
from augframe_afib.runs import build_classifier, settings_key, store_for, train_and_test
from augframe_afib.splits import holdout


class TSTREvaluator:
    """``tstr``: TSTR, TRTS and the TRTR baseline with one classifier from the registry."""

    name = "tstr"

    def __init__(
        self, classifier: str = "afib-reslstm", classifier_params: Mapping[str, Any] | None = None,
        max_epochs: int = 40, patience: int = 10, batch_size: int = 32, lr: float = 1e-3,
        max_steps_per_epoch: int | None = None, test_fraction: float = 0.2, val_fraction: float = 0.15,
        positive_class: int = 1, registry: Registry | None = None,
    ) -> None:
        self.classifier = classifier
        self.classifier_params = dict(classifier_params or {})
        self.train_settings = TrainSettings(max_epochs=max_epochs, patience=patience, batch_size=batch_size, lr=lr,
                                            max_steps_per_epoch=max_steps_per_epoch)
        self.test_fraction, self.val_fraction = float(test_fraction), float(val_fraction)
        self.positive = int(positive_class)
        self._registry = registry

    def settings(self) -> dict[str, Any]:
        return {"classifier": self.classifier, "classifier_params": self.classifier_params,
                "train": attrs.asdict(self.train_settings), "test_fraction": self.test_fraction,
                "val_fraction": self.val_fraction}

    def evaluate(self, real: ECGBatch, synthetic: ECGBatch, *, sources: ECGBatch | None = None,
                 context: EvalContext = EvalContext()) -> EvaluationResult:
        names = check_compatible(real, synthetic)
        seed = int(context.seed)
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
        syn_tr, syn_va = syn_pool[s_tr], syn_pool[s_va]
        registry = self._registry or Registry.discover()
        registry.get("classifier", self.classifier)
        device = resolve_device(context.device)
        store = store_for(context.workdir, self.name,
                          settings_key(self.settings(), fingerprint(real), fingerprint(synthetic), seed))
        xr, xs, yr, ys = real.numpy(), synthetic.numpy(), real.labels, synthetic.labels
        t0 = time.perf_counter()
        runs: dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]] = {}
        for run, (tr, va, tests) in {
            "train_real": ((xr[real_tr], yr[real_tr]), (xr[real_va], yr[real_va]),
                           {"real": xr[test], "synthetic": xs}),
            "train_synthetic": ((xs[syn_tr], ys[syn_tr]), (xs[syn_va], ys[syn_va]), {"real": xr[test]}),
        }.items():
            found = store.get(run)
            if found is None:
                model = build_classifier(registry, self.classifier, self.classifier_params, class_names=names,
                                         n_leads=real.n_leads, fs=real.fs, seed=seed)
                rec, arrays = train_and_test(model, tr, va, tests, self.train_settings, seed=seed, device=device,
                                             desc=run, show_progress=context.progress, state_path=store.state_path(run))
                store.put(run, rec, arrays)
                found = (rec, arrays)
            runs[run] = found
        rows, metrics = [], {}
        settings = (("TRTR", "train_real", "real", "real (baseline)", yr[test]),
                    ("TRTS", "train_real", "synthetic", "synthetic", ys),
                    ("TSTR", "train_synthetic", "real", "real", yr[test]))
        for tag, run, test_name, test_text, y_true in settings:
            rec, arrays = runs[run]
            m = classification_metrics(y_true, arrays[f"proba_{test_name}"], self.positive)
            for k, v in m.items():
                metrics[f"{tag.lower()}.{k}"] = v
            rows.append([tag, "real" if run == "train_real" else "synthetic", test_text, rec["n_train"],
                         len(y_true), m["f1"], m["macro_f1"], m["accuracy"], m["auroc"], rec["best_epoch"]])
        one_class = [tag for tag, run, test_name, _, _ in settings
                     if len(np.unique(runs[run][1][f"proba_{test_name}"].argmax(1))) < 2]
        if one_class:
            notes.append(f"{', '.join(one_class)}: the classifier predicted one class for every test ECG; such a "
                         "degenerate classifier makes the F1 comparison meaningless (train longer or wider)")
        base = metrics["trtr.f1"]
        metrics["tstr_over_trtr.f1"] = metrics["tstr.f1"] / base if base > 0 else float("nan")
        status = "good" if metrics["tstr_over_trtr.f1"] >= 0.9 else ("warn" if metrics["tstr_over_trtr.f1"] >= 0.75 else "bad")
        if one_class:
            status = "warn"
        headline = [
            {"label": "TSTR F1 (AF)", "value": f"{metrics['tstr.f1']:.3f}", "status": status,
             "note": f"{100 * metrics['tstr_over_trtr.f1']:.0f}% of the real-data baseline"},
            {"label": "TRTR F1 (baseline)", "value": f"{base:.3f}", "status": "neutral", "note": "train real, test real"},
            {"label": "TRTS F1", "value": f"{metrics['trts.f1']:.3f}", "status": "neutral",
             "note": "real-trained model on synthetic ECGs"},
        ]
        notes.append("Published reference point: SSSD-ECG reports TSTR/TRTS F1 0.80/0.91 on its own (PTB-XL) data; "
                     "figures from other data and classifiers are not directly comparable.")
        return EvaluationResult(
            name=self.name, metrics=metrics,
            tables={"tstr": Table(["setting", "train on", "test on", "n train", "n test", "F1 (AF)", "macro F1",
                                   "accuracy", "AUROC", "best epoch"], rows,
                                  caption="F1 of the positive class; TSTR near TRTR means the synthetic ECGs carry "
                                          "the class information of the real ones.")},
            notes=notes, details={"headline": headline, "title": "Train on synthetic, test on real (TSTR / TRTS)",
                                  "runs": {k: v[0] for k, v in runs.items()}, "seed": seed},
            scale=(f"{len(real)} real / {len(synthetic)} synthetic ECGs, classifier {self.classifier} "
                   f"{self.classifier_params or ''}, at most {self.train_settings.max_epochs} epochs, "
                   f"{time.perf_counter() - t0:.0f} s"),
        )
