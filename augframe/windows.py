"""WindowDataset: the map-style dataset of fixed-length windows that training code consumes.

The data layer's memory-mapped cache implements it, so generators and classifiers train on 150,000
windows without holding them in RAM; :class:`ArrayWindows` adapts an in-memory :class:`ECGBatch`
for small runs and tests. Items are ``(signal, label)``: float32 ``[leads, samples]`` numpy array and
an int class index (``-1`` when unlabelled), or, for multi-label data, a float32 multi-hot row
(then ``labels`` is ``(N, C)``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from augframe.errors import ValidationError
from augframe.signals import ECGBatch


@runtime_checkable
class WindowDataset(Protocol):
    """Fixed-length labelled windows with the facts needed to interpret them."""

    fs: float
    leads: tuple[str, ...]
    class_names: tuple[str, ...]
    # Optional: ``units`` (see ECGBatch.units), ``ids`` (stable per-window ids).

    @property
    def labels(self) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> tuple[np.ndarray, Any]: ...


class ArrayWindows:
    """A WindowDataset over an in-memory ECGBatch (class-index or multi-hot labels)."""

    def __init__(self, batch: ECGBatch) -> None:
        self.batch = batch.to_numpy()
        self.fs = batch.fs
        self.leads = batch.leads
        self.class_names = batch.class_names
        self.units = batch.units
        self._labels = batch.labels if batch.labels is not None else np.full(len(batch), -1, np.int64)

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    @property
    def ids(self) -> tuple[str, ...]:
        return self.batch.ids

    def __len__(self) -> int:
        return len(self.batch)

    def __getitem__(self, i: int) -> tuple[np.ndarray, Any]:
        y = self._labels[i]
        return self.batch.signals[i], (int(y) if self._labels.ndim == 1 else y)


def as_windows(data: Any) -> WindowDataset:
    """Accept an ECGBatch or any WindowDataset; anything else is a named error."""
    if isinstance(data, ECGBatch):
        return ArrayWindows(data)
    if isinstance(data, WindowDataset):
        return data
    raise ValidationError(
        f"training data of type {type(data).__name__} is neither an ECGBatch nor a WindowDataset "
        "(len, getitem -> (signal, label), fs, leads, class_names, labels)"
    )


def gather(data: WindowDataset, index: Any) -> ECGBatch:
    """The windows at ``index`` as an ECGBatch, with ids, units and per-window metadata.

    Datasets that can build batches themselves (``data.batch(index)``, e.g. the data layer's cache
    views, which carry patient and record ids) do so; otherwise windows are stacked and a
    ``patient_ids`` attribute, when present, becomes ``meta['patient_id']``.
    """
    idx = np.asarray(index, dtype=np.int64).reshape(-1)
    if isinstance(data, ArrayWindows):
        return data.batch.select(idx)
    batch = getattr(data, "batch", None)
    if callable(batch):
        return batch(idx)
    sig = np.stack([data[int(i)][0] for i in idx]) if len(idx) else np.zeros((0, len(data.leads), 1), np.float32)
    ids = getattr(data, "ids", None)
    pids = getattr(data, "patient_ids", None)
    return ECGBatch(sig, data.fs, data.leads, labels=data.labels[idx], class_names=data.class_names,
                    ids=[str(ids[int(i)]) if ids is not None else str(int(i)) for i in idx],
                    meta={} if pids is None else {"patient_id": np.asarray(pids)[idx]},
                    units=getattr(data, "units", "mV"))
