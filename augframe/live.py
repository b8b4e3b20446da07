"""Live (batch-level) augmentation: replace a fraction of each training batch with fresh generator outputs.

:class:`LiveAugmenter` takes one batch ``(x, y)``, picks ``round(fraction * B)`` eligible positions,
asks the generator for candidates made from those very ECGs (``transfer``: each picked ECG is
restyled to its target class; ``sample``: a new ECG of the same class), runs the filter chain and
puts accepted candidates in place of the originals, each labelled with the class it was made as
(in ``transfer``, the target class). When the filters reject candidates, further rounds draw
candidates from other items of the batch (then the same items with new seeds), within a budget,
so the share realised is the share asked for. The picked positions and per-sample seeds derive from
``(seed, epoch, batch index)`` with :func:`augframe.seeding.derive_seeds`, so a replayed run makes
the same batches.

:class:`LiveAugmentedLoader` wraps any DataLoader yielding ``(x, y)`` (or dict) batches and yields
``(x, y, synthetic)`` (or the dict with a ``synthetic`` entry). It is a loader wrapper rather than a ``collate_fn`` on purpose: collate runs
inside DataLoader worker processes, which must not own a GPU model; the wrapper runs the generator
in the training process, on the generator's device, on batches the workers prepared.
"""

from __future__ import annotations

import warnings
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
    """One augmented batch: signals and labels with accepted candidates swapped in.

    ``positions``: the replaced positions (sorted); ``tried``: the position of every candidate made,
    round by round; ``chains``: each round's filter-chain result, aligned with ``tried``;
    ``requested``: how many positions the fraction asked for.
    """

    x: Any
    y: Any
    synthetic: Any
    positions: np.ndarray
    tried: np.ndarray
    chains: tuple[ChainResult, ...]
    requested: int

    def __iter__(self) -> Iterator[Any]:  # unpack as x, y, synthetic
        return iter((self.x, self.y, self.synthetic))


class LiveAugmenter:
    """Generator + filter chain + fraction + seed, applied to one batch at a time.

    Args:
        generator: a Generator serving ``mode`` requests.
        filters: a FilterChain, a sequence of Filters, or None (accept every candidate).
        fraction: share of each batch to replace, ``0 <= fraction <= 1``: ``round(fraction * B)`` items,
            at most the eligible ones (in ``transfer``, those of a class with a target).
        seed: run seed; batch b of epoch e uses seeds derived from (seed, e, b).
        fs, leads, class_names: how to read the batch's signals and labels.
        mode: ``'transfer'`` (needs ``targets``) or ``'sample'`` (a new ECG of the item's class).
        targets: for ``transfer``, class name -> target class name (e.g. {'N': 'A', 'A': 'N'});
            items of other classes are never replaced.
        device: where generation runs (default: the generator's ``device`` attribute, else the batch's).
        options: generator request options (e.g. {'strength': 0.6}).
        tries: candidate budget per batch, as a multiple of the items asked for: rejected candidates
            are replaced by candidates from other items (then the same items with new seeds) until
            the share is met or the budget is spent (then a RuntimeWarning, once).

    ``stats`` counts batches, items requested and replaced, candidates made and accepted.
    """

    def __init__(self, generator: Any, filters: FilterChain | Sequence[Any] | None, fraction: float, seed: int = 0,
                 *, fs: float, leads: Sequence[str], class_names: Sequence[str], mode: str = "transfer",
                 targets: Mapping[str, str] | None = None, device: Any = None,
                 options: Mapping[str, Any] | None = None, tries: int = 4) -> None:
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
        if int(tries) < 1:
            raise ValidationError(f"LiveAugmenter tries={tries} must be at least 1")
        self.tries = int(tries)
        self._warned = False
        self.stats = {"batches": 0, "requested": 0, "replaced": 0, "candidates": 0, "accepted": 0}

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
        order = eligible[numpy_rng(self.seed, _STREAM_POSITIONS, e, int(batch_index)).permutation(len(eligible))]
        state = _Fill(x_t.clone() if k else x_t, y_np.copy(), np.zeros(b, dtype=bool))
        if k:
            self._fill(state, y_np, order, k, self.batch_seed(batch_index, e))
        replaced = int(state.synthetic.sum())
        self.stats["batches"] += 1
        self.stats["requested"] += k
        self.stats["replaced"] += replaced
        if replaced < k and not self._warned:
            self._warned = True
            warnings.warn(f"live augmentation replaced {replaced} of the {k} items asked for in a batch: the filters "
                          f"rejected too many of the {self.tries * k} candidates allowed (tries={self.tries}); "
                          "raise tries= or loosen the filters", RuntimeWarning, stacklevel=2)
        x_out = state.x
        return LiveBatch(x_out, torch.as_tensor(state.y, device=x_out.device),
                         torch.as_tensor(state.synthetic, device=x_out.device), np.flatnonzero(state.synthetic),
                         np.asarray(state.tried, dtype=np.int64), tuple(state.chains), k)

    def _fill(self, state: _Fill, y_np: np.ndarray, order: np.ndarray, k: int, batch_seed: int) -> None:
        """Rounds of candidates until ``k`` positions are replaced or ``tries * k`` candidates were made.

        Positions are taken in the seeded ``order``: untried ones first (attempt 0), then those still
        real again with fresh seeds (attempt 1, 2, ...). The first round asks for ``k``; later rounds
        for what is still needed divided by the acceptance seen so far, so a filter that rejects
        some candidates costs extra candidates, not a smaller share. A candidate's seed depends on
        its position and attempt only.
        """
        import torch

        budget, need, made, accepted, attempt = self.tries * k, k, 0, 0, 0
        queue = order.tolist()
        while need > 0 and made < budget:
            if not queue:
                attempt += 1
                queue = [q for q in order.tolist() if not state.synthetic[q]]
            rate = accepted / made if made else 1.0
            n = min(len(queue), budget - made, max(need, int(np.ceil(need / max(rate, 1.0 / self.tries)))))
            pos, queue = np.asarray(queue[:n], dtype=np.int64), queue[n:]
            seeds = _attempt_seeds(batch_seed, attempt, len(y_np))[pos]
            cands, chain = self._candidates(state.x, y_np, pos, seeds)
            made += n
            accepted += int(chain.accept.sum())
            take = np.flatnonzero(chain.accept)[:need]  # in priority order
            if len(take):
                new = cands.batch.torch(state.x.device)[torch.as_tensor(take, device=state.x.device)]
                state.x[torch.as_tensor(pos[take], device=state.x.device)] = new.to(state.x.dtype)
                state.y[pos[take]] = self._target[y_np[pos[take]]]  # transfer: the synthetic ECG's target class
                state.synthetic[pos[take]] = True
                need -= len(take)
            state.tried.extend(pos.tolist())
            state.chains.append(chain)
        self.stats["candidates"] += made
        self.stats["accepted"] += accepted

    def _candidates(self, x_t: Any, y_np: np.ndarray, pos: np.ndarray, seeds: np.ndarray) -> tuple[Any, ChainResult]:
        """The generator's candidates for the items at ``pos`` (still the originals there) and their chain verdicts."""
        import torch

        sources = ECGBatch(x_t[torch.as_tensor(pos, device=x_t.device)], self.fs, self.leads,
                           labels=y_np[pos], class_names=self.class_names)
        request = GenerationRequest(self.mode, self._target[y_np[pos]], seeds,
                                    sources=sources if self.mode == "transfer" else None,
                                    class_names=self.class_names, options=self.options)
        cands = self.generator.generate(request)
        if len(cands) != len(pos):
            raise ValidationError(f"generator {self.generator.info.name!r} returned {len(cands)} candidates "
                                  f"for {len(pos)} requests")
        return cands, self.chain.score(cands.batch, sources)


@attrs.define
class _Fill:
    """A batch being filled: signals (a copy), labels, which items are synthetic, and what was tried."""

    x: Any
    y: np.ndarray
    synthetic: np.ndarray
    tried: list[int] = attrs.field(factory=list)
    chains: list[ChainResult] = attrs.field(factory=list)


def _attempt_seeds(batch_seed: int, attempt: int, n: int) -> np.ndarray:
    """Per-position seeds of one attempt: attempt 0 uses the batch seed, attempt a a seed derived from it."""
    seed = batch_seed if attempt == 0 else int(derive_seeds(batch_seed, 1, offset=attempt)[0])
    return derive_seeds(seed, n)


class LiveAugmentedLoader:
    """Wraps a DataLoader of batches; yields them with live replacements and a ``synthetic`` mask.

    A tuple / list batch ``(x, y, ...)`` becomes a :class:`LiveBatch` (unpacks as ``x, y, synthetic``);
    a dict batch becomes a copy of the dict with ``keys`` (signal key, label key) replaced and a
    ``"synthetic"`` entry added. Other entries of a replaced item (e.g. its record id) still describe
    the real ECG it replaced.
    """

    def __init__(self, loader: Any, augmenter: LiveAugmenter, *, keys: tuple[str, str] = ("x", "y")) -> None:
        self.loader, self.augmenter = loader, augmenter
        self.keys = (str(keys[0]), str(keys[1]))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch of the augmenter and, where it has one, of the loader's sampler."""
        self.epoch = int(epoch)
        self.augmenter.set_epoch(epoch)
        for s in (getattr(self.loader, "sampler", None), getattr(self.loader, "batch_sampler", None)):
            if s is not None and hasattr(s, "set_epoch"):
                s.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        for i, batch in enumerate(self.loader):
            if isinstance(batch, Mapping):
                yield self._dict_batch(batch, i)
            else:
                yield self.augmenter(batch[0], batch[1], batch_index=i, epoch=self.epoch)

    def _dict_batch(self, batch: Mapping[str, Any], i: int) -> dict[str, Any]:
        kx, ky = self.keys
        if kx not in batch or ky not in batch:
            raise ValidationError(f"live loader got a dict batch with keys {sorted(batch)}; it needs the signal "
                                  f"and label keys {list(self.keys)}: pass keys=(signal key, label key)")
        if "synthetic" in batch:
            raise ValidationError("live loader got a dict batch that already has a 'synthetic' entry; rename it")
        out = self.augmenter(batch[kx], batch[ky], batch_index=i, epoch=self.epoch)
        return {**batch, kx: out.x, ky: out.y, "synthetic": out.synthetic}
