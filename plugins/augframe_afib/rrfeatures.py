"""``rr-features``: an AF classifier from RR-interval irregularity alone (logistic regression).

AF is a rhythm diagnosis, so a judge that sees only beat timing cannot be pleased by waveform
detail a generator learned from another judge. Beats come from wfdb XQRS (default) or the
band-pass detector of this plugin, never from the generator-side detector; the features are those
of :mod:`augframe_afib.rhythm`, log-scaled where they are ratios (see :data:`FEATURES`).

The model is a ``torch.nn.Module`` satisfying ``augframe.protocols.Classifier``: ``forward``
computes the features in numpy and applies the standardisation and linear model held as
buffers (``mean``, ``scale``, ``coef``, ``intercept``, ``fitted``), so ``state_dict`` and
safetensors files carry the whole model and no pickle is involved. It is trained by
:meth:`RRFeatureClassifier.fit` (scikit-learn, class-balanced logistic regression, C chosen on
the validation set), not by gradient descent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from augframe.checkpoint import load_into, load_weights, save_weights
from augframe.errors import CheckpointError, PluginError, ValidationError, require_choice

from augframe_afib.detectors import CACHE, DETECTORS, detect
from augframe_afib.metrics import classification_metrics
from augframe_afib.rhythm import rr_features

#: The model's inputs, in order. ``log_*`` = ln(feature + 0.01); ``few_beats`` = 1 when fewer than
#: :data:`MIN_BEATS` beats were found (then every irregularity feature is 0 and the heart rate is
#: the beat count per minute).
FEATURES = ("log_rr_cv", "log_nrmssd", "log_drr_median_rel", "log_rr_iqr_rel", "pnn50", "pnn50_rate", "drr10",
            "rr_out10", "drr_entropy", "turning_points", "cosen", "heart_rate_bpm", "n_beats", "few_beats")
LOGGED = ("rr_cv", "nrmssd", "drr_median_rel", "rr_iqr_rel")
LOG_OFFSET = 0.01
MIN_BEATS = 5
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
FORMAT = "augframe-rr-features-1"


def feature_matrix(x: np.ndarray, fs: float, detector: str = "xqrs") -> np.ndarray:
    """``[N, len(FEATURES)]`` float64 model inputs of ECGs ``x`` ``[N, leads, samples]`` (first lead)."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1] < 1:
        raise ValidationError(f"rr-features expects ECGs [N, leads, samples]; got shape {x.shape}")
    raw = rr_features(detect(x, fs, detector), fs)
    few = raw["n_beats"] < MIN_BEATS
    cols = {}
    for name in FEATURES:
        if name == "few_beats":
            cols[name] = few.astype(np.float64)
        elif name == "n_beats":
            cols[name] = raw["n_beats"]
        elif name == "heart_rate_bpm":
            cols[name] = np.where(few, raw["n_beats"] * 60.0 * fs / x.shape[-1], raw["heart_rate_bpm"])
        elif name.startswith("log_"):
            cols[name] = np.log(np.where(few, 0.0, raw[name[4:]]) + LOG_OFFSET)
        else:
            cols[name] = np.where(few, 0.0, raw[name])
    return np.stack([cols[k] for k in FEATURES], axis=1)


def _numpy(x: Any) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _labels(y: Any, n: int, n_classes: int, what: str) -> np.ndarray:
    y = np.asarray(y.detach().cpu() if torch.is_tensor(y) else y)
    if y.ndim != 1 or len(y) != n:
        raise ValidationError(f"{what} must be one class index per ECG ({n}); got shape {y.shape}")
    y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValidationError(f"{what} holds class indices outside 0..{n_classes - 1}")
    return y


class RRFeatureClassifier(nn.Module):
    """Standardised RR features -> class-balanced logistic regression; see the module docstring."""

    def __init__(self, class_names: Sequence[str] = ("N", "A"), fs: float = 250.0, detector: str = "xqrs",
                 C: float | None = None, seed: int = 0) -> None:
        super().__init__()
        self.class_names = tuple(class_names)
        if len(self.class_names) < 2:
            raise ValidationError(f"rr-features needs at least two classes; got class_names={self.class_names}")
        if not fs > 0:
            raise ValidationError(f"rr-features fs={fs} must be the input sampling rate in Hz")
        if C is not None and not C > 0:
            raise ValidationError(f"rr-features C={C} must be positive (or None to choose it on validation data)")
        self.fs = float(fs)
        self.detector = require_choice("rr-features detector", detector, DETECTORS)
        self.C, self.seed = C, int(seed)
        n_c, n_f = len(self.class_names), len(FEATURES)
        self.register_buffer("mean", torch.zeros(n_f, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(n_f, dtype=torch.float64))
        self.register_buffer("coef", torch.zeros(n_c, n_f, dtype=torch.float64))
        self.register_buffer("intercept", torch.zeros(n_c, dtype=torch.float64))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.uint8))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return FEATURES

    def _require_fitted(self) -> None:
        if not int(self.fitted):
            raise PluginError("the rr-features classifier has not been fitted: call fit(x_train, y_train, x_val, "
                              "y_val) or build it with checkpoint=<a file written by save()>")

    def embed(self, x: Any) -> torch.Tensor:
        """Standardised features ``[N, len(FEATURES)]`` (float32, on ``x``'s device)."""
        self._require_fitted()
        f = torch.from_numpy(feature_matrix(_numpy(x), self.fs, self.detector))
        z = (f - self.mean.cpu()) / self.scale.cpu()
        return z.float().to(x.device if torch.is_tensor(x) else "cpu")

    def forward(self, x: Any) -> torch.Tensor:
        """Logits ``[N, classes]`` of ECGs ``[N, leads, samples]`` (float32; no gradient flows to ``x``)."""
        z = self.embed(x)
        with torch.autocast(device_type=z.device.type, enabled=False):
            return z @ self.coef.float().T + self.intercept.float()

    # ---- training ---------------------------------------------------------------------------------
    def fit(self, x_train: Any, y_train: Any, x_val: Any = None, y_val: Any = None, *, seed: int = 0) -> dict[str, Any]:
        """Fit on ``(x_train, y_train)``; choose C on ``(x_val, y_val)`` unless it was given.

        Labels are class indices. C is picked from :data:`C_GRID` by validation AUROC (one-vs-rest
        macro for more than two classes; ties go to the smaller C); without a validation set C is 1.
        Returns what was done and measured (JSON-ready).
        """
        t0 = time.perf_counter()
        detect_s0 = CACHE.seconds[self.detector]
        n_classes = len(self.class_names)
        x_train = _numpy(x_train)
        y_train = _labels(y_train, len(x_train), n_classes, "y_train")
        missing = sorted(set(range(n_classes)) - set(np.unique(y_train).tolist()))
        if missing:
            raise ValidationError(f"rr-features training data has no ECG of class(es) "
                                  f"{[self.class_names[i] for i in missing]}; every class needs examples")
        f_train = feature_matrix(x_train, self.fs, self.detector)
        mean, scale = f_train.mean(0), f_train.std(0)
        scale = np.where(scale > 0, scale, 1.0)
        z_train = (f_train - mean) / scale
        z_val = y_val_arr = None
        if x_val is not None and y_val is not None and len(x_val):
            x_val = _numpy(x_val)
            y_val_arr = _labels(y_val, len(x_val), n_classes, "y_val")
            z_val = (feature_matrix(x_val, self.fs, self.detector) - mean) / scale
        grid: dict[str, float] = {}
        if self.C is not None:
            c, how = float(self.C), "given"
        elif z_val is None or len(np.unique(y_val_arr)) < 2:
            c, how = 1.0, "default (no validation set with two or more classes)"
        else:
            for cand in C_GRID:
                proba = self._logistic(z_train, y_train, cand, seed).predict_proba(z_val)
                grid[str(cand)] = classification_metrics(y_val_arr, proba)["auroc"]
            c, how = max(C_GRID, key=lambda v: (grid[str(v)], -v)), "validation AUROC"
        model = self._logistic(z_train, y_train, c, seed)
        coef, intercept = np.asarray(model.coef_), np.asarray(model.intercept_)
        if coef.shape[0] == 1:  # binary: logits [0, w.z + b] give softmax = sigmoid
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        with torch.no_grad():
            for name, value in (("mean", mean), ("scale", scale), ("coef", coef), ("intercept", intercept)):
                getattr(self, name).copy_(torch.from_numpy(np.asarray(value, dtype=np.float64)))
            self.fitted.fill_(1)
        report: dict[str, Any] = {
            "C": c, "C_chosen_by": how, "C_grid_val_auroc": grid, "n_train": int(len(y_train)),
            "n_val": 0 if z_val is None else int(len(z_val)), "detector": self.detector, "features": list(FEATURES),
            "few_beats_train": int(f_train[:, FEATURES.index("few_beats")].sum()),
            "train_auroc": classification_metrics(y_train, model.predict_proba(z_train))["auroc"],
        }
        if z_val is not None:
            report["val_auroc"] = classification_metrics(y_val_arr, model.predict_proba(z_val))["auroc"]
        report["detect_seconds"] = CACHE.seconds[self.detector] - detect_s0
        report["seconds"] = time.perf_counter() - t0
        return report

    def _logistic(self, z: np.ndarray, y: np.ndarray, c: float, seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed).fit(z, y)

    # ---- files ------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"format": FORMAT, "class_names": list(self.class_names), "fs": self.fs, "detector": self.detector,
                "features": list(FEATURES), "C": self.C, "seed": self.seed}

    def save(self, path: str | Path) -> str:
        """Write the fitted model to ``path`` (safetensors + JSON metadata, atomically); return its SHA-256."""
        self._require_fitted()
        return save_weights(path, self.state_dict(), self.config())

    @classmethod
    def load(cls, path: str | Path, *, fs: float | None = None) -> RRFeatureClassifier:
        """The model saved at ``path``; ``fs`` (default: the rate it was trained at) is the input rate."""
        state, config = load_weights(path)
        _check_config(config, str(path))
        model = cls(config["class_names"], fs if fs is not None else config["fs"], config["detector"], config["C"],
                    config["seed"])
        load_into(model, state, f"rr-features checkpoint {path}")
        return model


def _check_config(config: dict[str, Any], path: str) -> None:
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rr-features checkpoint (format {config.get('format')!r}, "
                              f"expected {FORMAT!r})")
    if tuple(config.get("features", ())) != FEATURES:
        raise CheckpointError(f"{path} was made with features {config.get('features')}; this version uses "
                              f"{list(FEATURES)}: fit and save the model again")


def make_rr_features(class_names: Sequence[str] = ("N", "A"), fs: float = 250.0, detector: str = "xqrs",
                     checkpoint: str | Path | None = None, C: float | None = None,
                     seed: int = 0) -> RRFeatureClassifier:
    """An ``rr-features`` classifier for ``fs`` Hz input: fitted from ``checkpoint``, else unfitted (call ``fit``)."""
    if checkpoint is None:
        return RRFeatureClassifier(class_names, fs, detector, C, seed)
    model = RRFeatureClassifier.load(checkpoint, fs=fs)
    for what, want, got in (("class_names", tuple(class_names), model.class_names),
                            ("detector", detector, model.detector)):
        if want != got:
            raise CheckpointError(f"rr-features checkpoint {checkpoint} has {what} {got!r}, the recipe asks for "
                                  f"{want!r}; fit a model for them or change the recipe")
    return model
