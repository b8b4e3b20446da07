"""Amplitude normalisation fitted on the training split only, saved as JSON, with an inverse to mV.

Kinds:

* ``"minmax"``: the reference's global min-max, ``x' = (x - gmin) / (gmax - gmin) * 3 - 1.5``
  (to [-1.5, 1.5]) with gmin/gmax taken over all training windows (the reference took them over
  all data before splitting, which leaks test amplitudes into training);
* ``"zscore"``: per-window (per lead) zero mean, unit variance. Nothing global to fit; the
  inverse needs each window's mean/std, and without them falls back to the training median std
  (a typical amplitude; exact only for windows that had it);
* ``"robust"``: global ``(x - median) / IQR``, fitted on a seeded sample of training windows;
* ``"none"``: identity.

:meth:`Normaliser.apply` and :meth:`inverse` take numpy arrays or torch tensors [..., samples].
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from augframe.atomic import write_json
from augframe.errors import DataError, ValidationError, require_choice

KINDS = ("minmax", "zscore", "robust", "none")
_EPS = 1e-8


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


@attrs.frozen
class Normaliser:
    """A fitted normalisation: kind, its parameters, and the number of windows it was fitted on."""

    kind: str = "none"
    params: Mapping[str, float] = attrs.field(factory=dict)
    target: tuple[float, float] = attrs.field(default=(-1.5, 1.5), converter=lambda v: (float(v[0]), float(v[1])))
    fitted_on: int = 0

    def __attrs_post_init__(self) -> None:
        require_choice("normalise", self.kind, KINDS)

    # --- fitting -------------------------------------------------------------------------------
    @classmethod
    def fit(cls, kind: str | None, chunks: Iterable[np.ndarray], *, target: tuple[float, float] = (-1.5, 1.5),
            seed: int = 0, max_robust_windows: int = 2000) -> Normaliser:
        """Fit on training windows given as chunks of [n, leads, samples] in mV (streamed, one pass)."""
        kind = "none" if kind is None else kind
        require_choice("normalise", kind, KINDS)
        rng = np.random.default_rng(seed)
        lo, hi, n = np.inf, -np.inf, 0
        stds: list[np.ndarray] = []
        held_keys, held = np.zeros(0), np.zeros((0,), np.float32)
        for chunk in chunks:
            c = np.asarray(chunk, dtype=np.float64)
            if c.size == 0:
                continue
            n += len(c)
            if kind == "minmax":
                lo, hi = min(lo, float(c.min())), max(hi, float(c.max()))
            elif kind == "zscore":
                stds.append(c.std(axis=-1).ravel())
            elif kind == "robust":  # bottom-k random keys: a uniform sample of windows, streamed
                keys = np.concatenate([held_keys, rng.random(len(c))])
                pool = np.concatenate([held, c.astype(np.float32)]) if len(held) else c.astype(np.float32)
                order = np.argsort(keys)[:max_robust_windows]
                held_keys, held = keys[order], pool[order]
        if n == 0 and kind != "none":
            raise DataError("cannot fit the normalisation: the training split has no windows")
        params: dict[str, float] = {}
        if kind == "minmax":
            if not hi > lo:
                raise DataError(f"cannot fit min-max normalisation: all training values equal {lo}")
            params = {"global_min": lo, "global_max": hi}
        elif kind == "zscore":
            params = {"median_std": float(np.median(np.concatenate(stds)))}
        elif kind == "robust":
            vals = held.ravel()
            q25, med, q75 = np.percentile(vals, [25, 50, 75])
            if not q75 > q25:
                raise DataError("cannot fit robust normalisation: the training interquartile range is 0")
            params = {"median": float(med), "iqr": float(q75 - q25)}
        return cls(kind=kind, params=params, target=target, fitted_on=n)

    # --- applying ------------------------------------------------------------------------------
    def apply(self, x: Any) -> Any:
        """Normalise [..., samples] (numpy or torch); mV in, normalised units out."""
        p = self.params
        if self.kind == "none":
            return x
        if self.kind == "minmax":
            a, b = self.target
            return (x - p["global_min"]) / (p["global_max"] - p["global_min"]) * (b - a) + a
        if self.kind == "robust":
            return (x - p["median"]) / p["iqr"]
        mean = x.mean(-1, keepdims=True) if not _is_torch(x) else x.mean(-1, keepdim=True)
        std = x.std(-1, keepdims=True) if not _is_torch(x) else x.std(-1, keepdim=True, unbiased=False)
        return (x - mean) / (std + _EPS)

    def inverse(self, x: Any, *, mean: Any = None, std: Any = None) -> Any:
        """Back to mV. For ``zscore`` give each window's ``mean``/``std`` (shape [..., 1]) if known."""
        p = self.params
        if self.kind == "none":
            return x
        if self.kind == "minmax":
            a, b = self.target
            return (x - a) / (b - a) * (p["global_max"] - p["global_min"]) + p["global_min"]
        if self.kind == "robust":
            return x * p["iqr"] + p["median"]
        s = p["median_std"] if std is None else std
        return x * (s + _EPS) + (0.0 if mean is None else mean)

    @property
    def units(self) -> str:
        return "mV" if self.kind == "none" else self.kind

    # --- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": dict(self.params), "target": list(self.target),
                "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Normaliser:
        unknown = set(d) - {"kind", "params", "target", "fitted_on"}
        if unknown:
            raise ValidationError(f"normaliser JSON has unknown key(s) {sorted(unknown)}")
        need = {"minmax": {"global_min", "global_max"}, "zscore": {"median_std"},
                "robust": {"median", "iqr"}, "none": set()}
        kind = d.get("kind", "none")
        require_choice("normaliser kind", kind, KINDS)
        missing = need[kind] - set(d.get("params", {}))
        if missing:
            raise ValidationError(f"{kind} normaliser JSON lacks parameter(s) {sorted(missing)}")
        return cls(kind=kind, params={k: float(v) for k, v in d["params"].items()} if d.get("params") else {},
                   target=tuple(d.get("target", (-1.5, 1.5))), fitted_on=int(d.get("fitted_on", 0)))

    def save(self, path: str | os.PathLike[str]) -> Path:
        write_json(path, self.to_dict(), sort_keys=True)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Normaliser:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read normaliser {path}: {exc}; re-fit it on the training split") from exc

