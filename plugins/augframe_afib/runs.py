"""One training run (build classifier, fit, test), the classifiers an evaluator names, and the
resumable store of finished runs.

``train_and_test`` trains any registry classifier: one with its own ``fit`` (non-gradient) trains
itself, any other goes through ``augframe_afib.fit.fit_classifier``; both give the same record.

Each finished run is written under ``<workdir>/<evaluator>/<key>/`` as ``<run>.json`` (metrics,
epochs, timings) plus ``<run>.npz`` (test indices and probabilities), atomically, *after* it
finishes. A killed evaluation started again with the same inputs and settings finds them and
trains only the runs that are missing. The key hashes inputs and settings, so a changed input
never picks up stale runs.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from augframe.atomic import write_bytes, write_json
from augframe.errors import ValidationError
from augframe.jsonable import jsonable
from augframe.plugins import Registry

from augframe_afib.fit import Augment, TrainSettings, fit_classifier, predict_proba
from augframe_afib.metrics import classification_metrics


def settings_key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class RunStore:
    """Finished runs on disk (or only in memory when ``root`` is None)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._memory: dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]] = {}
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)

    def get(self, name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        if name in self._memory:
            return self._memory[name]
        if self.root is None:
            return None
        jpath, npath = self.root / f"{name}.json", self.root / f"{name}.npz"
        if not (jpath.is_file() and npath.is_file()):
            return None
        try:
            record = json.loads(jpath.read_text())
            with np.load(npath, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError):  # a damaged file: train the run again
            return None
        self._memory[name] = (record, arrays)
        return record, arrays

    def state_path(self, name: str) -> Path | None:
        """Where an unfinished run keeps its per-epoch training state (None without a workdir)."""
        return None if self.root is None else self.root / f"{name}.train-state.pt"

    def put(self, name: str, record: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self._memory[name] = (record, dict(arrays))
        if self.root is None:
            return
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_bytes(self.root / f"{name}.npz", buf.getvalue())  # arrays first: the JSON marks completion
        write_json(self.root / f"{name}.json", record)


def store_for(workdir: Path | None, evaluator: str, key: str) -> RunStore:
    return RunStore(None if workdir is None else Path(workdir) / evaluator / key)


@attrs.frozen
class ClassifierSpec:
    """A registry classifier, its factory ``params`` and the ``label`` its results carry (default: the name)."""

    name: str
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    label: str = attrs.field(default=attrs.Factory(lambda self: self.name, takes_self=True))

    def settings(self) -> dict[str, Any]:
        return {"label": self.label, "name": self.name, "params": dict(self.params)}

    def describe(self) -> str:
        return f"{self.name} {dict(self.params)}" if self.params else self.name

    @property
    def tag(self) -> str:
        """File-safe run-name prefix; the params hash keeps runs of other params apart."""
        return f"{self.label}-{settings_key(self.name, dict(self.params))[:8]}"


SPEC_KEYS = frozenset({"name", "params", "label"})


def parse_classifiers(value: Any, defaults: Mapping[str, Mapping[str, Any]] | None = None,
                      what: str = "classifiers") -> tuple[ClassifierSpec, ...]:
    """Specs from a recipe value: one or more registry names or ``{name, params, label}`` tables.

    A bare name takes ``defaults[name]`` as its params (else the factory defaults). Labels name
    run files and result keys, so they must be file-safe and unique.
    """
    items = [value] if isinstance(value, (str, Mapping)) else list(value or ())
    specs = []
    for item in items:
        if isinstance(item, str):
            specs.append(ClassifierSpec(item, dict((defaults or {}).get(item) or {})))
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str) and set(item) <= SPEC_KEYS:
            label = str(item.get("label") or item["name"])
            specs.append(ClassifierSpec(item["name"], dict(item.get("params") or {}), label))
        else:
            raise ValidationError(f"{what} entry {item!r}: give a registry name or a table with 'name' and optional "
                                  "'params' and 'label', e.g. ['afib-reslstm', {name = 'rr-features'}]")
    if not specs:
        raise ValidationError(f"{what} is empty; name at least one classifier, e.g. ['afib-reslstm']")
    labels = [s.label for s in specs]
    bad = [lab for lab in labels if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", lab)]
    if bad:
        raise ValidationError(f"{what} labels {bad} name run files: use letters, digits, '_', '.', '-'")
    if len(set(labels)) != len(labels):
        raise ValidationError(f"{what} have repeated labels {labels}; give each entry its own 'label'")
    return tuple(specs)


def classifier_specs(classifier: str, classifier_params: Mapping[str, Any] | None,
                     classifiers: Any = None) -> tuple[ClassifierSpec, ...]:
    """An evaluator's classifiers, the first being its primary one: ``classifier`` with
    ``classifier_params`` alone, or the ``classifiers`` list, where a bare name equal to
    ``classifier`` takes ``classifier_params``."""
    if classifiers is None:
        return (ClassifierSpec(classifier, dict(classifier_params or {})),)
    return parse_classifiers(classifiers, {classifier: classifier_params or {}})


def build_classifier(registry: Registry, name: str, params: Mapping[str, Any], *, class_names: tuple[str, ...],
                     n_leads: int, fs: float, seed: int) -> Any:
    """Create a registry classifier, filling in class names, lead count, rate and seed where it takes them."""
    factory = registry.get("classifier", name).factory
    try:
        accepted = set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        accepted = set()
    full = dict(params)
    for key, value in (("class_names", class_names), ("seed", seed), ("in_channels", n_leads),
                       ("n_leads", n_leads), ("fs", fs)):
        if key in accepted and key not in full:
            full[key] = value
    model = registry.create("classifier", name, full)
    if tuple(getattr(model, "class_names", ())) != tuple(class_names):
        raise ValidationError(
            f"classifier {name!r} has classes {getattr(model, 'class_names', None)}, the data {class_names}; "
            "give it the data's class_names"
        )
    return model


def train_and_test(
    model: Any, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
    tests: Mapping[str, np.ndarray], settings: TrainSettings, *, seed: int, device: str,
    augment: Augment | None = None, desc: str = "", show_progress: bool = False, state_path: Path | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Fit on ``train`` with ``val`` for model selection; return a JSON record and test probabilities.

    A model with a ``fit(x_train, y_train, x_val, y_val, *, seed) -> dict`` method trains itself
    (non-gradient classifiers such as RR-feature models; ``settings`` do not apply and an
    ``augment`` is applied once to the whole training set); any other model is trained by
    gradient descent with ``fit_classifier`` (``state_path`` makes that resumable epoch by
    epoch). Both give the same record keys; ``trainer`` says which ran.
    """
    t0 = time.perf_counter()
    if callable(getattr(model, "fit", None)):
        record = _self_fit(model, train, val, seed=seed, augment=augment)
    else:
        fit = fit_classifier(model, train[0], train[1], val[0], val[1], settings, seed=seed, device=device,
                             augment=augment, desc=desc, show_progress=show_progress, state_path=state_path)
        record = {
            "trainer": "gradient", "best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run,
            "best_val_loss": fit.best_val_loss, "best_val_auroc": fit.best_val_auroc,
            "stopped_early": fit.stopped_early, "hit_cap": fit.hit_cap, "steps": fit.steps,
            "planned_steps": fit.planned_steps, "samples_seen": fit.samples_seen, "history": list(fit.history),
        }
    seconds = time.perf_counter() - t0
    probas = {name: predict_proba(model, x, device=device, batch_size=settings.eval_batch_size)
              for name, x in tests.items()}
    record.update(n_train=int(len(train[0])), n_val=int(len(val[0])), train_seconds=seconds,
                  samples_per_second=float(record["samples_seen"] / max(seconds, 1e-9)))
    return record, {f"proba_{k}": v for k, v in probas.items()}


def _self_fit(model: Any, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], *, seed: int,
              augment: Augment | None) -> dict[str, Any]:
    """Run a classifier's own ``fit``; the record mirrors a gradient run's (one "epoch", no history)."""
    x, y = train
    if augment is not None:
        import torch

        x = augment(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y), seed).numpy()
    info = model.fit(x, y, val[0], val[1], seed=seed)
    if not isinstance(info, Mapping):
        raise ValidationError(f"{type(model).__name__}.fit returned {type(info).__name__}; it must return a dict "
                              "(JSON-serialisable facts about the fit)")
    return {"trainer": "fit", "best_epoch": 1, "epochs_run": 1, "best_val_loss": float("nan"),
            "best_val_auroc": float("nan"), "stopped_early": False, "hit_cap": False, "steps": 0, "planned_steps": 0,
            "samples_seen": int(len(x)), "history": [], "fit_info": jsonable(dict(info), fallback=str)}


def score(record: dict[str, Any], y_true: np.ndarray, proba: np.ndarray, positive: int) -> dict[str, Any]:
    record = dict(record)
    record["metrics"] = classification_metrics(y_true, proba, positive)
    return record
