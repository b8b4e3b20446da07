"""AugmentedDataset: a drop-in torch Dataset that swaps a fixed share of real items for bank samples.

Whether item ``i`` of epoch ``e`` is synthetic, and which bank sample replaces it, is a pure
function of ``(seed, e, i)`` (given the base labels and the bank), computed from counter-based
hashes, so the item sequence is identical under any ``num_workers`` and across runs.

* **Exact share, kept class balance.** For every class ``c`` with ``n_c`` real items, exactly
  ``round(share * n_c)`` of them (chosen by a seeded permutation of epoch ``e``) are replaced by a
  bank sample of the same class, so the label of every position, hence the class balance of the
  epoch, is unchanged.
* **Items** are :class:`AugmentedItem` ``(signal, label, synthetic)`` named tuples: float32
  ``[leads, samples]`` numpy array, int class index, bool. The default collate function turns a
  batch of them into an ``AugmentedItem`` of three tensors.
* **Cheap.** The per-epoch plan is two arrays of length ``len(base)``, computed by
  :meth:`~AugmentedDataset.set_epoch` in the main process, so forked DataLoader workers inherit it
  instead of each recomputing it. A DataLoader fetches a whole batch through
  :meth:`~AugmentedDataset.__getitems__`: the plan is looked up for the batch at once, real items
  come from the base (its own ``__getitems__`` if it has one, else ``base[i]``, exactly as a plain
  loader would call it) and the batch's synthetic items from one :meth:`Bank.read
  <augframe.bank.Bank.read>` (one positioned read per sample, no memory map, so a worker's RSS
  does not grow with the bank). A bank opened with ``verify='lazy'`` (the default) is hashed, and
  its shard headers parsed, once at construction; workers inherit that. A collated batch crosses
  from a worker to the main process as two shared-memory buffers, signals and labels-with-flags
  (see :meth:`AugmentedItem.__reduce__`), like a plain ``(signal, label)`` batch, not three.

Call :meth:`set_epoch` before each epoch (as with ``DistributedSampler``). DataLoader workers see
the epoch set before the loader's iterator is created, so use ``persistent_workers=False`` (the
default) or index with ``(epoch, i)`` pairs from your own sampler. A process that serves more
than one epoch's worth of items without a new epoch (set_epoch never called, or persistent
workers that never see it) warns once, since it would repeat the same plan every epoch.

``exclude_sources`` keeps synthetic ECGs made from the given source ids (e.g. the test split's
records) out of training: those bank samples are never picked.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from augframe.bank import Bank
from augframe.errors import BankError, ValidationError
from augframe.seeding import Stream, derive_seeds, numpy_rng
from augframe.signals import ECGBatch

try:
    import torch as _torch
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover
    _torch = None  # type: ignore[assignment]
    _TorchDataset = object  # type: ignore[misc,assignment]

_STREAM_SELECT = Stream.DATASET_SELECT  # separates "which items" from "which sample"
_STREAM_PICK = Stream.DATASET_PICK
_F32 = np.dtype(np.float32)


class AugmentedItem(NamedTuple):
    """One item ``(signal, label, synthetic)``, or, after the default collate, a batch of them.

    Unpacks like the plain tuple ``x, y, synthetic = item``.
    """

    signal: Any
    label: Any
    synthetic: Any

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle a collated CPU batch with labels and flags in one tensor.

        A DataLoader worker hands each tensor of a batch to the main process as its own
        shared-memory segment, passed by file descriptor, at a fixed CPU cost on each side per
        tensor and batch whatever its size (docs/benchmarks-changelog.md, augmented_dataset). Packing
        the bytes of the int64 labels and of the bool flags into one uint8 tensor makes a batch
        cost what a plain ``(signal, label)`` batch costs; the main process unpacks it into the
        same ``AugmentedItem`` of three tensors, labels and flags being views of the packed bytes.
        """
        signal, label, synthetic = self
        if (_torch is not None and isinstance(label, _torch.Tensor) and isinstance(synthetic, _torch.Tensor)
                and label.dtype == _torch.int64 and synthetic.dtype == _torch.bool and label.ndim == 1
                and label.shape == synthetic.shape and label.device.type == "cpu"
                and synthetic.device.type == "cpu" and label.is_contiguous() and synthetic.is_contiguous()
                and not label.requires_grad):
            return _unpack_batch, (signal, _torch.cat((label.view(_torch.uint8), synthetic.view(_torch.uint8))))
        return AugmentedItem, (signal, label, synthetic)


def _unpack_batch(signal: Any, packed: Any) -> AugmentedItem:
    """The inverse of :meth:`AugmentedItem.__reduce__`: B int64 labels then B bool flags, as bytes."""
    n = packed.numel() // 9
    return AugmentedItem(signal, packed[:8 * n].view(_torch.int64), packed[8 * n:].view(_torch.bool))


# AugmentedItem from a (signal, label, synthetic) tuple without the Python-level __new__ of a
# NamedTuple (~3x cheaper per item; a DataLoader makes one per item).
_make_item = partial(tuple.__new__, AugmentedItem)


class AugmentedDataset(_TorchDataset):
    """``base`` with ``ratio`` of each class's items replaced, per epoch, by same-class bank samples.

    Args:
        base: map-style dataset whose items are ``(signal, label)`` and which has ``labels``
            (a WindowDataset, or any torch Dataset with a ``labels`` array). If it has
            ``class_names``, labels are matched to the bank's classes by name.
        bank: a :class:`~augframe.bank.Bank` (or its path) with class-index labels.
        ratio: share of items replaced in every epoch, ``0 <= ratio < 1``.
        seed: fixes the plan of every epoch.
        missing_classes: ``'error'`` (default) if a base class has no bank sample while ratio > 0;
            ``'real'`` keeps that class's items real (the share then holds over the other classes).
        exclude_sources: source ids whose synthetic ECGs must not enter training (e.g. the ids of
            the test split); bank samples made from them are never picked.
    """

    def __init__(self, base: Any, bank: Bank | str, ratio: float, seed: int = 0, *,
                 missing_classes: str = "error", exclude_sources: Iterable[str] = ()) -> None:
        if not 0.0 <= float(ratio) < 1.0:
            raise ValidationError(f"AugmentedDataset ratio={ratio} must be in [0, 1), e.g. 0.33")
        if missing_classes not in ("error", "real"):
            raise ValidationError(f"AugmentedDataset missing_classes={missing_classes!r}; use 'error' or 'real'")
        if isinstance(base, ECGBatch):  # the pipeline's own split: items through ArrayWindows
            from augframe.windows import as_windows

            base = as_windows(base)
        self.base = base
        self.bank = bank if isinstance(bank, Bank) else Bank.open(bank)
        self.bank.prepare_reads()  # once, here: workers inherit the checked shards instead of re-hashing
        self.ratio = float(ratio)
        self.seed = int(seed)
        self.epoch = 0
        labels = getattr(base, "labels", None)
        if labels is None:
            raise ValidationError("AugmentedDataset needs base.labels (one class index per item) to keep class balance")
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(base):
            raise ValidationError(f"base.labels has shape {labels.shape}; expected ({len(base)},) class indices")
        if self.bank.labels.ndim != 1:
            raise ValidationError("AugmentedDataset needs a bank with class-index labels, not multi-hot")
        self._check_layout()
        self._base_labels = labels.astype(np.int64)
        self._label_list = self._base_labels.tolist()
        self._bank_class = self._bank_class_of_base_labels()
        usable = self._usable(exclude_sources)
        self._by_class = {c: np.flatnonzero((self.bank.labels == c) & usable) for c in np.unique(self.bank.labels)}
        self._served = 0
        self._n_items = len(self._base_labels)
        self._warned = False
        self._strata = self._make_strata(missing_classes)
        self._base_getitems = getattr(base, "__getitems__", None)
        self._plan_epoch: int | None = None
        self._pick_list: list[int] | None = None
        self.plan(0)

    # ---- the plan ------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch and compute its plan here, so DataLoader workers forked next inherit it."""
        self.epoch = int(epoch)
        self._served = 0
        self.plan(self.epoch)

    def plan(self, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(synthetic mask [N] bool, bank index [N] int64, -1 where real) of an epoch."""
        e = self.epoch if epoch is None else int(epoch)
        if self._plan_epoch != e:
            self._synthetic, self._pick = self._make_plan(e)
            self._pick_list = None  # the per-item path's list form, made when that path first needs it
            self._plan_epoch = e
        return self._synthetic, self._pick

    def _make_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self._base_labels)
        synthetic = np.zeros(n, dtype=bool)
        pick = np.full(n, -1, dtype=np.int64)
        if self.ratio == 0.0:
            return synthetic, pick
        rng = numpy_rng(self.seed, _STREAM_SELECT, epoch)
        for members in self._strata:  # fixed class order: the plan does not depend on dict order
            k = int(round(self.ratio * len(members)))
            synthetic[members[rng.permutation(len(members))[:k]]] = True
        epoch_seed = int(derive_seeds(self.seed ^ _STREAM_PICK, 1, offset=epoch)[0])
        h = derive_seeds(epoch_seed, n).astype(np.uint64)  # one hash per position: pure f(seed, epoch, i)
        idx = np.flatnonzero(synthetic)
        for c in np.unique(self._bank_class[idx]):
            sel = idx[self._bank_class[idx] == c]
            pool = self._by_class[int(c)]
            pick[sel] = pool[(h[sel] % np.uint64(len(pool))).astype(np.int64)]
        return synthetic, pick

    # ---- Dataset -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._base_labels)

    def __getitem__(self, index: Any) -> AugmentedItem:
        if isinstance(index, tuple):  # (epoch, i) from an epoch-aware sampler
            epoch, i = (int(v) for v in index)
        else:
            epoch, i = self.epoch, int(index)
            self._served += 1
            if self._served > self._n_items:
                self._count(0)
        if self._plan_epoch != epoch:
            self.plan(epoch)
        if self._pick_list is None:
            self._pick_list = self._pick.tolist()  # per-item lookups: a list beats numpy scalar indexing
        j = self._pick_list[i]
        if j >= 0:
            return _make_item((self.bank[j][0], self._label_list[i], True))
        signal, label = self.base[i]
        return _make_item((np.asarray(signal, dtype=np.float32), int(label), False))

    def __getitems__(self, indices: Any) -> list[AugmentedItem]:
        """The items of a batch of indices, equal to ``[self[i] for i in indices]``, fetched at once.

        What a DataLoader calls per batch: one plan lookup for the batch, real items from the base
        one by one (or through the base's own ``__getitems__``), synthetic items from one
        :meth:`Bank.read <augframe.bank.Bank.read>`.
        """
        indices = list(indices)
        if not indices:
            return []
        if isinstance(indices[0], tuple):  # (epoch, i) pairs; usually one epoch per batch
            pairs = np.asarray(indices, dtype=np.int64).reshape(len(indices), 2)
            pos, pick = pairs[:, 1], np.empty(len(pairs), dtype=np.int64)
            for e in np.unique(pairs[:, 0]).tolist():
                sel = pairs[:, 0] == e
                pick[sel] = self.plan(e)[1][pos[sel]]
        else:  # numpy indexing raises IndexError out of range and counts negative indices from the end, as [] does
            pos = np.asarray(indices, dtype=np.int64)
            self._count(len(pos))
            pick = self.plan(self.epoch)[1][pos]
        is_syn = pick >= 0
        signals: list[Any] = [None] * len(pos)
        labels = self._base_labels[pos].tolist()  # a synthetic item keeps the label of the item it replaces
        syn = np.flatnonzero(is_syn)
        if len(syn):
            for r, signal in zip(syn.tolist(), self.bank.read(pick[syn])):
                signals[r] = signal
        real = np.flatnonzero(~is_syn).tolist()
        if real:
            real_pos = pos[real].tolist()
            got = self._base_getitems(real_pos) if self._base_getitems else [self.base[i] for i in real_pos]
            asarray, f32, ndarray = np.asarray, _F32, np.ndarray
            for r, (signal, label) in zip(real, got):  # as __getitem__ does, skipping no-op conversions
                signals[r] = signal if type(signal) is ndarray and signal.dtype is f32 else asarray(signal, dtype=f32)
                labels[r] = label if type(label) is int else int(label)
        return list(map(_make_item, zip(signals, labels, is_syn.tolist())))

    @property
    def labels(self) -> np.ndarray:
        """Each item's class index (a copy): a synthetic item keeps the label of the item it replaces,
        so these hold in every epoch (e.g. for a WeightedRandomSampler)."""
        return self._base_labels.copy()

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the label indices: the base's when it has them, else the bank's."""
        return tuple(getattr(self.base, "class_names", ()) or ()) or tuple(self.bank.class_names)

    def synthetic_share(self, epoch: int | None = None) -> float:
        return float(self.plan(epoch)[0].mean()) if len(self) else 0.0

    def _count(self, n: int) -> None:
        """Warn once when this process serves a second epoch's worth of items under the same epoch."""
        self._served += n
        if self._served > self._n_items and not self._warned and self.ratio > 0:
            self._warned = True
            warnings.warn(
                f"AugmentedDataset served more than {len(self._base_labels)} items (one epoch) with epoch "
                f"{self.epoch}'s plan: call set_epoch(e) before each epoch; DataLoader workers with "
                "persistent_workers=True never see it (use persistent_workers=False or (epoch, i) indices)",
                RuntimeWarning, stacklevel=3)

    # ---- checks --------------------------------------------------------------------------------
    def _usable(self, exclude_sources: Iterable[str]) -> np.ndarray:
        """Bank samples that may be picked: all but those made from an excluded source."""
        excluded = {str(s) for s in exclude_sources}
        if not excluded:
            return np.ones(len(self.bank), dtype=bool)
        return np.array([r.get("source_id") not in excluded for r in self.bank.rows()], dtype=bool)

    def _check_layout(self) -> None:
        units = getattr(self.base, "units", None) or getattr(getattr(self.base, "batch", None), "units", None)
        if units is not None and str(units) != self.bank.units:
            raise BankError(f"base dataset is in units {units!r} but the bank holds {self.bank.units!r}; mixing "
                            "them would train on two scales: generate the bank from the same preprocessing")
        for field in ("fs", "leads"):
            have = getattr(self.base, field, None)
            if have is None:
                continue
            want = getattr(self.bank, field)
            if (tuple(have) if field == "leads" else float(have)) != want:
                raise BankError(f"base dataset has {field}={have!r} but the bank holds {field}={want!r}; "
                                "generate the bank with the base's preprocessing")

    def _bank_class_of_base_labels(self) -> np.ndarray:
        """Base label index -> bank label index (by class name when the base names its classes)."""
        names = tuple(getattr(self.base, "class_names", ()) or ())
        labels = self._base_labels
        if not names:
            return labels
        mapping = np.array([self.bank.class_names.index(c) if c in self.bank.class_names else -1 for c in names],
                           dtype=np.int64)
        out = np.full(len(labels), -1, dtype=np.int64)
        valid = (labels >= 0) & (labels < len(names))
        out[valid] = mapping[labels[valid]]
        return out

    def _make_strata(self, missing_classes: str) -> list[np.ndarray]:
        strata = []
        for c in np.unique(self._base_labels):
            members = np.flatnonzero(self._base_labels == c)
            bank_c = int(self._bank_class[members[0]])
            if bank_c >= 0 and len(self._by_class.get(bank_c, ())) > 0:
                strata.append(members)
            elif self.ratio > 0 and missing_classes == "error":
                names = getattr(self.base, "class_names", ()) or ()
                name = names[c] if 0 <= c < len(names) else str(c)
                raise BankError(
                    f"the bank has no sample of class {name!r} ({len(members)} base items); generate some, "
                    "or pass missing_classes='real' to keep that class real"
                )
        return strata
