"""ECGBatch: the one value type for a batch of ECGs that flows between every stage.

Signals are float32 ``[N, leads, samples]``, held either as a numpy array or a torch tensor (on any
device); conversions share memory where the backends allow, so moving a batch between numpy and a
CPU tensor costs nothing. Labels are either class indices ``(N,)`` (``-1`` = unlabelled) or a
multi-hot matrix ``(N, C)`` for multi-label data such as PTB-XL statements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from augframe.errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Values ``ECGBatch.units`` takes (see the class docstring).
UNITS: tuple[str, ...] = ("mV", "zscore", "minmax", "robust", "normalised")

#: Standard 12-lead names, in the conventional order.
STANDARD_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)
_LEAD_LOOKUP = {name.lower(): name for name in STANDARD_LEADS}


def canonical_lead(name: str) -> str:
    """Return the standard spelling of a lead name ('avr' -> 'aVR'); unknown names raise."""
    key = str(name).strip().lower()
    if key not in _LEAD_LOOKUP:
        raise ValidationError(
            f"lead name {name!r} is not a standard 12-lead name; use one of {', '.join(STANDARD_LEADS)}"
        )
    return _LEAD_LOOKUP[key]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _as_leads(value: Sequence[str]) -> tuple[str, ...]:
    return tuple(canonical_lead(v) for v in value)


def _as_ids(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(v) for v in value)


def _as_meta(value: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    return {str(k): np.asarray(v) for k, v in (value or {}).items()}


def _as_fs(value: Any) -> float:
    arr = np.asarray(value.detach().cpu() if _is_torch(value) else value)
    if arr.ndim != 0 or arr.dtype.kind not in "iuf":
        raise ValidationError(f"ECGBatch.fs={value!r} ({type(value).__name__}) must be a real number: the "
                              "sampling rate in Hz, e.g. 300.0")
    return float(value)


def _as_labels(value: Any) -> np.ndarray | None:
    """Class indices (N,) as int64 or multi-hot (N, C) as float32; never a lossy cast."""
    if value is None:
        return None
    arr = np.asarray(value.detach().cpu() if _is_torch(value) else value)
    if arr.dtype.kind not in "biuf":
        raise ValidationError(f"ECGBatch.labels has dtype {arr.dtype}; give integer class indices or a numeric "
                              "multi-hot matrix")
    if arr.ndim == 1:
        if arr.dtype.kind == "f":
            whole = np.isfinite(arr) & (arr == np.round(arr)) & (np.abs(arr) < 2**31)
            if not whole.all():
                bad = arr[~whole][0]
                raise ValidationError(f"ECGBatch.labels holds {bad!r}, not a whole class index; give integer "
                                      "class indices (-1 = unlabelled)")
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValidationError("ECGBatch.labels (multi-hot) contains NaN or Inf")
    return arr.astype(np.float32, copy=False)


def _as_class_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValidationError(f"ECGBatch.class_names={value!r} is one string; give a sequence of names")
    names = tuple(value)
    if not all(isinstance(n, str) and n for n in names):
        raise ValidationError(f"ECGBatch.class_names={names!r} must be non-empty strings")
    if len(set(names)) != len(names):
        raise ValidationError(f"ECGBatch.class_names {names} repeats a name; each class needs its own")
    return names


@attrs.frozen(eq=False, repr=False)
class ECGBatch:
    """A batch of ECGs with everything a stage needs to interpret it.

    Attributes:
        signals: float32 ``[N, leads, samples]`` numpy array or torch tensor.
        fs: sampling rate in Hz.
        leads: standard lead names, one per lead axis entry.
        labels: ``(N,)`` int64 class indices (``-1`` unlabelled) or ``(N, C)`` multi-hot, or None.
        class_names: names of the classes that label indices (or multi-hot columns) refer to.
        ids: per-sample string ids (generated as ``"0".."N-1"`` when not given).
        meta: per-sample metadata columns, each an array of length N.
        units: what the values are: "mV" (physical), "zscore" (per-sample z-score), "minmax"
            (global min-max, the reference's [-1.5, 1.5]), "robust" (median/IQR), or "normalised"
            (scaled in a way the producer does not state). Filters that judge amplitudes use it.
    """

    signals: Any
    fs: float = attrs.field(converter=_as_fs)
    leads: tuple[str, ...] = attrs.field(converter=_as_leads, default=("II",))
    labels: np.ndarray | None = attrs.field(converter=_as_labels, default=None)
    class_names: tuple[str, ...] = attrs.field(converter=_as_class_names, default=())
    ids: tuple[str, ...] = attrs.field(converter=_as_ids, default=None)  # "0".."N-1" when not given
    meta: dict[str, np.ndarray] = attrs.field(converter=_as_meta, factory=dict)
    units: str = "mV"

    def __attrs_post_init__(self) -> None:
        self._validate_signals()
        if self.units not in UNITS:
            raise ValidationError(f"ECGBatch.units={self.units!r}; use one of {UNITS}")
        n, n_leads, _ = self.signals.shape
        if self.fs <= 0 or not np.isfinite(self.fs):
            raise ValidationError(f"ECGBatch.fs={self.fs} must be a positive sampling rate in Hz")
        if len(self.leads) != n_leads:
            raise ValidationError(
                f"ECGBatch.leads has {len(self.leads)} names for {n_leads} leads in signals; "
                "give one standard lead name per lead"
            )
        if len(set(self.leads)) != len(self.leads):
            raise ValidationError(f"ECGBatch.leads {self.leads} repeats a lead name")
        self._validate_labels(n)
        if self.ids is None:
            object.__setattr__(self, "ids", tuple(str(i) for i in range(n)))
        elif len(self.ids) != n:
            raise ValidationError(f"ECGBatch.ids has {len(self.ids)} entries for {n} samples")
        for key, col in self.meta.items():
            if len(col) != n:
                raise ValidationError(f"ECGBatch.meta[{key!r}] has {len(col)} entries for {n} samples")

    def _validate_signals(self) -> None:
        x = self.signals
        if not (_is_torch(x) or isinstance(x, np.ndarray)):
            try:
                x = np.asarray(x)
            except (TypeError, ValueError) as exc:
                raise ValidationError(f"ECGBatch.signals cannot be read as an array ({exc})") from exc
        if x.ndim != 3:
            raise ValidationError(
                f"ECGBatch.signals has shape {tuple(x.shape)}; expected [N, leads, samples] "
                "(add axes with x[:, None, :] for single-lead data)"
            )
        if x.shape[1] < 1 or x.shape[2] < 1:
            raise ValidationError(f"ECGBatch.signals has shape {tuple(x.shape)}: every ECG needs at least one "
                                  "lead and one sample")
        if _is_torch(x):
            import torch

            if x.is_complex() or x.dtype == torch.bool:
                raise ValidationError(f"ECGBatch.signals has dtype {x.dtype}; give real-valued float signals")
            if x.dtype != torch.float32:
                x = x.float()
            finite = bool(torch.isfinite(x).all())
        else:
            if x.dtype.kind not in "iuf":
                raise ValidationError(f"ECGBatch.signals has dtype {x.dtype}; give real-valued float signals "
                                      "(complex, boolean and object arrays are refused, not cast)")
            if x.dtype != np.float32 or not all(s >= 0 for s in x.strides):
                x = np.ascontiguousarray(x, dtype=np.float32)  # float32, and no negative strides for torch
            finite = bool(np.isfinite(x).all())
        object.__setattr__(self, "signals", x)
        if not finite:
            raise ValidationError(
                "ECGBatch.signals contains NaN or Inf; clean or drop those samples before building a batch"
            )

    def _validate_labels(self, n: int) -> None:
        y = self.labels
        if y is None:
            return
        if len(y) != n:
            raise ValidationError(f"ECGBatch.labels has {len(y)} entries for {n} samples")
        if y.ndim == 1:
            if self.class_names and (y.max(initial=-1) >= len(self.class_names) or y.min(initial=0) < -1):
                raise ValidationError(
                    f"ECGBatch.labels holds indices outside 0..{len(self.class_names) - 1} "
                    f"for class_names {self.class_names}"
                )
        elif y.ndim == 2:
            if self.class_names and y.shape[1] != len(self.class_names):
                raise ValidationError(
                    f"ECGBatch.labels is multi-hot with {y.shape[1]} columns but class_names has "
                    f"{len(self.class_names)} names"
                )
        else:
            raise ValidationError("ECGBatch.labels must be (N,) class indices or (N, C) multi-hot")

    # --- shape -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.signals.shape[0])

    @property
    def n_leads(self) -> int:
        return int(self.signals.shape[1])

    @property
    def n_samples(self) -> int:
        return int(self.signals.shape[2])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    @property
    def is_torch(self) -> bool:
        return _is_torch(self.signals)

    def __repr__(self) -> str:
        backend = f"torch:{self.signals.device}" if self.is_torch else "numpy"
        return (
            f"ECGBatch(n={len(self)}, leads={list(self.leads)}, samples={self.n_samples}, "
            f"fs={self.fs:g}, classes={list(self.class_names)}, {backend})"
        )

    # --- conversions -------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """Signals as a numpy array (no copy for numpy or CPU tensors)."""
        x = self.signals
        return x.detach().cpu().numpy() if _is_torch(x) else x

    def torch(self, device: Any = None) -> "torch.Tensor":
        """Signals as a torch tensor on ``device`` (no copy for numpy on the CPU)."""
        import torch

        x = self.signals if _is_torch(self.signals) else torch.from_numpy(self.signals)
        return x if device is None else x.to(device, non_blocking=True)

    def require_labels(self, what: str) -> np.ndarray:
        """The labels; a ValidationError saying ``what`` needs them when the batch is unlabelled."""
        if self.labels is None:
            raise ValidationError(f"{what} needs labelled ECGs; this batch has no labels (give its classes)")
        return self.labels

    def to_numpy(self) -> ECGBatch:
        return self if not self.is_torch else attrs.evolve(self, signals=self.numpy())

    def to(self, device: Any) -> ECGBatch:
        return attrs.evolve(self, signals=self.torch(device))

    def with_signals(self, signals: Any, **changes: Any) -> ECGBatch:
        """A batch with new signals (same N) and otherwise the same fields unless changed."""
        return attrs.evolve(self, signals=signals, **changes)

    # --- selection ---------------------------------------------------------------------------
    def select(self, index: Any) -> ECGBatch:
        """Samples at ``index`` (slice, integer array or boolean mask), with their labels and meta."""
        idx = np.asarray(index) if not isinstance(index, slice) else index
        if isinstance(idx, np.ndarray) and idx.dtype == bool:
            idx = np.flatnonzero(idx)
        if isinstance(idx, np.ndarray) and idx.ndim == 0:
            idx = idx.reshape(1)
        ids = np.asarray(self.ids, dtype=object)[idx]
        x = self.signals
        if _is_torch(x) and isinstance(idx, np.ndarray):
            import torch

            x = x[torch.as_tensor(idx, device=x.device, dtype=torch.long)]
        else:
            x = x[idx]
        return attrs.evolve(
            self,
            signals=x,
            labels=None if self.labels is None else self.labels[idx],
            ids=tuple(ids.tolist()),
            meta={k: v[idx] for k, v in self.meta.items()},
        )

    def select_leads(self, names: Sequence[str]) -> ECGBatch:
        """The given leads, in the given order; a lead the batch lacks raises."""
        wanted = _as_leads(names)
        missing = [n for n in wanted if n not in self.leads]
        if missing:
            raise ValidationError(f"leads {missing} are not in this batch (it has {list(self.leads)})")
        pos = [self.leads.index(n) for n in wanted]
        return attrs.evolve(self, signals=self.signals[:, pos, :], leads=wanted)

    @classmethod
    def concat(cls, batches: Sequence[ECGBatch]) -> ECGBatch:
        """Join batches that agree on fs, leads, class names and units."""
        if not batches:
            raise ValidationError("ECGBatch.concat needs at least one batch")
        first = batches[0]
        for b in batches[1:]:
            for field in ("fs", "leads", "class_names", "units", "n_samples"):
                if getattr(b, field) != getattr(first, field):
                    raise ValidationError(
                        f"cannot concatenate batches with different {field}: "
                        f"{getattr(first, field)!r} vs {getattr(b, field)!r}"
                    )
        signals: Any
        if first.is_torch:
            import torch

            signals = torch.cat([b.torch(first.signals.device) for b in batches])
        else:
            signals = np.concatenate([b.numpy() for b in batches])
        have_labels = [b.labels is not None for b in batches]
        if any(have_labels) and not all(have_labels):
            raise ValidationError("cannot concatenate labelled and unlabelled batches")
        keys = set(first.meta)
        if any(set(b.meta) != keys for b in batches):
            raise ValidationError("cannot concatenate batches whose meta columns differ")
        return cls(
            signals=signals,
            fs=first.fs,
            leads=first.leads,
            labels=np.concatenate([b.labels for b in batches if b.labels is not None]) if all(have_labels) else None,
            class_names=first.class_names,
            ids=[i for b in batches for i in b.ids],
            meta={k: np.concatenate([b.meta[k] for b in batches]) for k in keys},
            units=first.units,
        )
