"""One training run (build classifier, fit, test) and the resumable store of finished runs.

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
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from augframe.atomic import write_bytes, write_json
from augframe.errors import ValidationError
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
    """Fit on ``train`` with early stopping on ``val``; return a JSON record and test probabilities.

    ``state_path`` makes the run itself resumable epoch by epoch (see ``fit_classifier``).
    """
    t0 = time.perf_counter()
    fit = fit_classifier(model, train[0], train[1], val[0], val[1], settings, seed=seed, device=device,
                         augment=augment, desc=desc, show_progress=show_progress, state_path=state_path)
    seconds = time.perf_counter() - t0
    probas = {name: predict_proba(model, x, device=device, batch_size=settings.eval_batch_size)
              for name, x in tests.items()}
    record = {
        "best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run, "best_val_loss": fit.best_val_loss,
        "stopped_early": fit.stopped_early, "hit_cap": fit.hit_cap, "n_train": int(len(train[0])),
        "n_val": int(len(val[0])), "train_seconds": seconds,
        "samples_per_second": float(fit.samples_seen / max(seconds, 1e-9)),
        "history": list(fit.history),
    }
    return record, {f"proba_{k}": v for k, v in probas.items()}


def score(record: dict[str, Any], y_true: np.ndarray, proba: np.ndarray, positive: int) -> dict[str, Any]:
    record = dict(record)
    record["metrics"] = classification_metrics(y_true, proba, positive)
    return record
