"""Live (batch-level) augmentation: replace a fraction of each training batch with fresh generator outputs.

:class:`LiveAugmenter` takes one batch ``(x, y)``, picks ``round(fraction * B)`` eligible positions,
asks the generator for candidates made from those very ECGs (``transfer``: each picked ECG is
restyled to its target class; ``sample``: a new ECG of the same class), runs the filter chain and
puts the accepted candidates in place of the originals; rejected candidates leave the original
ECG and label where they were. The picked positions and per-sample seeds derive from
``(seed, epoch, batch index)`` with :func:`augframe.seeding.derive_seeds`, so a replayed run makes
the same batches.

:class:`LiveAugmentedLoader` wraps any DataLoader yielding ``(x, y)`` and yields
``(x, y, synthetic)``. It is a loader wrapper rather than a ``collate_fn`` on purpose: collate runs
inside DataLoader worker processes, which must not own a GPU model; the wrapper runs the generator
in the training process, on the generator's device, on batches the workers prepared.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from augframe.errors import ValidationError
from augframe.filterchain import ChainResult, FilterChain
from augframe.protocols import GenerationRequest
from augframe.seeding import Stream, derive_seeds, numpy_rng
from augframe.signals import ECGBatch

_STREAM_POSITIONS = Stream.LIVE_POSITIONS


@attrs.frozen(eq=False)
class LiveBatch:
    """One augmented batch: signals and labels with accepted candidates swapped in."""

    x: Any
    y: Any
    synthetic: Any
    positions: np.ndarray
    chain: ChainResult | None

    def __iter__(self) -> Iterator[Any]:  # unpack as x, y, synthetic
        return iter((self.x, self.y, self.synthetic))


class LiveAugmenter:
    """Generator + filter chain + fraction + seed, applied to one batch at a time.

    Args:
        generator: a Generator serving ``mode`` requests.
        filters: a FilterChain, a sequence of Filters, or None (accept every candidate).
        fraction: share of each batch to replace (of the eligible items), ``0 <= fraction <= 1``.
        seed: run seed; batch b of epoch e uses seeds derived from (seed, e, b).
        fs, leads, class_names: how to read the batch's signals and labels.
        mode: ``'transfer'`` (needs ``targets``) or ``'sample'`` (a new ECG of the item's class).
        targets: for ``transfer``, class name -> target class name (e.g. {'N': 'A', 'A': 'N'});
            items of other classes are never replaced.
        device: where generation runs (default: the generator's ``device`` attribute, else the batch's).
        options: generator request options (e.g. {'strength': 0.6}).
    """

    def __init__(self, generator: Any, filters: FilterChain | Sequence[Any] | None, fraction: float, seed: int = 0,
                 *, fs: float, leads: Sequence[str], class_names: Sequence[str], mode: str = "transfer",
                 targets: Mapping[str, str] | None = None, device: Any = None,
                 options: Mapping[str, Any] | None = None) -> None:
        if not 0.0 <= float(fraction) <= 1.0:
            raise ValidationError(f"LiveAugmenter fraction={fraction} must be in [0, 1]")
        if mode not in ("transfer", "sample"):
            raise ValidationError(f"LiveAugmenter mode={mode!r}; use 'transfer' or 'sample'")
        if mode not in generator.request_kinds:
            raise ValidationError(f"generator {generator.info.name!r} serves {sorted(generator.request_kinds)}, "
                                  f"not {mode!r} requests")
        self.generator = generator
        self.chain = filters if isinstance(filters, FilterChain) else FilterChain(filters or ())
        self.fraction, self.seed, self.mode = float(fraction), int(seed), mode
        self.fs, self.leads, self.class_names = float(fs), tuple(leads), tuple(class_names)
        self.device = device if device is not None else getattr(generator, "device", None)
        self.options = dict(options or {})
        self.epoch = 0
        n_cls = len(self.class_names)
        self._target = np.arange(n_cls, dtype=np.int64)  # sample mode: same class
        if mode == "transfer":
            if not targets:
                raise ValidationError("LiveAugmenter mode='transfer' needs targets, e.g. {'N': 'A', 'A': 'N'}")
            self._target = np.full(n_cls, -1, dtype=np.int64)
            for src, dst in targets.items():
                for name in (src, dst):
                    if name not in self.class_names:
                        raise ValidationError(f"LiveAugmenter targets name class {name!r}, "
                                              f"not one of {self.class_names}")
                self._target[self.class_names.index(src)] = self.class_names.index(dst)
        self.stats = {"batches": 0, "candidates": 0, "accepted": 0}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batch_seed(self, batch_index: int, epoch: int | None = None) -> int:
        """The seed of batch ``batch_index`` of ``epoch``: a pure function of (seed, epoch, batch)."""
        e = self.epoch if epoch is None else int(epoch)
        epoch_seed = int(derive_seeds(self.seed, 1, offset=e)[0])
        return int(derive_seeds(epoch_seed, 1, offset=int(batch_index))[0])

    def __call__(self, x: Any, y: Any, batch_index: int, epoch: int | None = None) -> LiveBatch:
        import torch

        e = self.epoch if epoch is None else int(epoch)
        device = self.device if self.device is not None else (x.device if torch.is_tensor(x) else "cpu")
        x_t = (x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))).to(device, torch.float32)
        y_np = np.asarray(y.detach().cpu() if torch.is_tensor(y) else y, dtype=np.int64).reshape(-1)
        b = len(y_np)
        if x_t.ndim != 3 or x_t.shape[0] != b:
            raise ValidationError(f"live batch x has shape {tuple(x_t.shape)}; expected [{b}, leads, samples]")
        eligible = np.flatnonzero((y_np >= 0) & (y_np < len(self._target)))
        eligible = eligible[self._target[y_np[eligible]] >= 0]
        k = min(len(eligible), int(round(self.fraction * b)))
        rng = numpy_rng(self.seed, _STREAM_POSITIONS, e, int(batch_index))
        pos = np.sort(eligible[rng.permutation(len(eligible))[:k]])
        synthetic = np.zeros(b, dtype=bool)
        y_out = y_np.copy()
        chain_result = None
        if k:
            seeds = derive_seeds(self.batch_seed(batch_index, e), b)[pos]  # keyed by position: batch-order free
            sources = ECGBatch(x_t[torch.as_tensor(pos, device=x_t.device)], self.fs, self.leads,
                               labels=y_np[pos], class_names=self.class_names)
            targets = self._target[y_np[pos]]
            request = GenerationRequest(self.mode, targets, seeds, sources=sources if self.mode == "transfer" else None,
                                        class_names=self.class_names, options=self.options)
            cands = self.generator.generate(request)
            if len(cands) != k:
                raise ValidationError(f"generator {self.generator.info.name!r} returned {len(cands)} candidates "
                                      f"for {k} requests")
            chain_result = self.chain.score(cands.batch, sources)
            acc = chain_result.accept
            if acc.any():
                x_t = x_t.clone()
                new = cands.batch.torch(x_t.device)[torch.as_tensor(np.flatnonzero(acc), device=x_t.device)]
                x_t[torch.as_tensor(pos[acc], device=x_t.device)] = new.to(x_t.dtype)
                y_out[pos[acc]] = targets[acc]
                synthetic[pos[acc]] = True
            self.stats["candidates"] += k
            self.stats["accepted"] += int(acc.sum())
        self.stats["batches"] += 1
        y_t = torch.as_tensor(y_out, device=x_t.device)
        return LiveBatch(x_t, y_t, torch.as_tensor(synthetic, device=x_t.device), pos, chain_result)


class LiveAugmentedLoader:
    """Wraps a DataLoader of ``(x, y)`` batches; yields ``(x, y, synthetic)`` with live replacements."""

    def __init__(self, loader: Any, augmenter: LiveAugmenter) -> None:
        self.loader, self.augmenter = loader, augmenter
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch of the augmenter and, where it has one, of the loader's sampler."""
        self.epoch = int(epoch)
        self.augmenter.set_epoch(epoch)
        for s in (getattr(self.loader, "sampler", None), getattr(self.loader, "batch_sampler", None)):
            if hasattr(s, "set_epoch"):
                s.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[LiveBatch]:
        for i, batch in enumerate(self.loader):
            x, y = batch[0], batch[1]
            yield self.augmenter(x, y, batch_index=i, epoch=self.epoch)
