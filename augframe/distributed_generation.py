"""Generating one synthetic bank with several processes (GPUs, nodes), identical to one process.

The work is a fixed list of N items (item i: target label, optional source window, seed). Rank r
makes the contiguous items ``ctx.shard(N)``; item i's seed is ``derive_seeds(seed, ., offset=i)``,
a pure function of the run seed and the GLOBAL index, so what item i becomes does not depend on
the number of ranks or the batch size (generators honour per-sample seeds). Each rank reads only
its own sources, filters its candidates and appends the accepted ones to its own staging
:class:`~augframe.bank.Bank` (one writer per bank). Then rank 0 merges the staging banks into the
target bank in global item order, so the result is the same bank, with the same manifest rows, as
a one-process run, and removes the staging banks.

A killed run resumes: items whose key is already in the target bank or in a staging bank are
skipped, and the merge appends with ``skip_existing``. ``'complete'`` requests (known signal +
mask) are not sharded here; ``'transfer'`` and ``'sample'`` are.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from augframe import atomic
from augframe.bank import BANK_META, Bank
from augframe.distributed import DistContext, barrier
from augframe.errors import PluginError, ValidationError
from augframe.protocols import GenerationRequest
from augframe.seeding import derive_seeds
from augframe.signals import ECGBatch
from augframe.windows import as_windows, gather


@attrs.frozen(eq=False)
class GenerationJob:
    """The whole (global) work list: item i makes one ECG of ``labels[i]``.

    ``sources`` (a WindowDataset or ECGBatch) and ``source_index[i]`` give item i's source window
    for ``'transfer'``; item keys are ``f"{key_prefix}:{i}"`` (the bank's unique key).
    """

    kind: str
    labels: np.ndarray = attrs.field(converter=lambda a: np.asarray(a, dtype=np.int64))
    seed: int
    class_names: tuple[str, ...] = attrs.field(converter=tuple)
    sources: Any = None
    source_index: np.ndarray | None = attrs.field(
        default=None, converter=lambda a: None if a is None else np.asarray(a, dtype=np.int64))
    options: Mapping[str, Any] = attrs.field(factory=dict)
    key_prefix: str = "item"

    def __attrs_post_init__(self) -> None:
        if self.kind not in ("transfer", "sample"):
            raise ValidationError(f"GenerationJob.kind={self.kind!r}; sharded generation serves 'transfer' and 'sample'")
        if self.labels.ndim != 1:
            raise ValidationError("GenerationJob.labels must be (N,) class indices")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValidationError(f"GenerationJob.labels must index class_names {self.class_names}")
        if self.kind == "transfer":
            if self.sources is None or self.source_index is None or len(self.source_index) != len(self.labels):
                raise ValidationError("a 'transfer' GenerationJob needs sources and one source_index per label")
            object.__setattr__(self, "sources", as_windows(self.sources))
            n_src = len(self.sources)
            if len(self.source_index) and (self.source_index.min() < 0 or self.source_index.max() >= n_src):
                raise ValidationError(f"GenerationJob.source_index must lie in 0..{n_src - 1} (the sources)")

    def __len__(self) -> int:
        return len(self.labels)

    def key(self, i: int) -> str:
        return f"{self.key_prefix}:{i}"

    def request(self, start: int, stop: int) -> GenerationRequest:
        """The request of items ``[start, stop)``: global-offset seeds, only those items' sources."""
        labels = self.labels[start:stop]
        seeds = derive_seeds(self.seed, stop - start, offset=start)
        if self.kind == "sample":
            return GenerationRequest("sample", labels, seeds, class_names=self.class_names, options=self.options)
        sources = gather(self.sources, self.source_index[start:stop])
        return GenerationRequest("transfer", labels, seeds, sources=sources, class_names=self.class_names,
                                 options=self.options)


def staging_dir(bank_path: str | Path) -> Path:
    """Where the ranks' staging banks of ``bank_path`` live (beside it, removed after the merge)."""
    p = Path(bank_path)
    return p.parent / f"{p.name}.staging"


def generate_sharded(ctx: DistContext, generator: Any, job: GenerationJob, bank_path: str | Path, *,
                     batch_size: int = 64, chain: Any = None, merge_chunk: int = 4096) -> dict[str, Any]:
    """Make this rank's share of ``job`` into a staging bank; rank 0 merges all into ``bank_path``.

    Call it on every rank (collective: it ends with barriers). ``chain`` (a FilterChain or Filter)
    scores candidates; rejected ones are not banked. Returns this rank's counts, plus the merged
    bank's size on rank 0.
    """
    if batch_size < 1:
        raise ValidationError(f"batch_size={batch_size} must be >= 1")
    bank_path = Path(bank_path)
    start, stop = ctx.shard(len(job))
    done: set[str] = set()
    if (bank_path / BANK_META).exists():
        with Bank.open(bank_path, verify="none") as final:
            done.update(final.keys)
    mine = staging_dir(bank_path) / f"rank-{ctx.rank:05d}-of-{ctx.world_size:05d}"
    progress = mine.with_name(mine.name + ".progress.json")
    staging: Bank | None = Bank.open(mine, writable=True, verify="none") if (mine / BANK_META).exists() else None
    resume_at = start
    if progress.exists():  # items before 'next' were made (accepted ones banked, rejected ones dropped)
        resume_at = max(start, int(json.loads(progress.read_text())["next"]))
    made = accepted = 0
    try:
        for b0 in range(resume_at, stop, batch_size):
            b1 = min(b0 + batch_size, stop)
            todo = np.array([i for i in range(b0, b1) if job.key(i) not in done], dtype=np.int64)
            if not len(todo):
                continue
            batch, rows = _make(generator, job, todo, chain)
            made += len(todo)
            if not len(batch):
                atomic.write_json(progress, {"next": b1})
                continue
            if staging is None:
                staging = Bank.create(mine, fs=batch.fs, leads=batch.leads, samples_per_window=batch.n_samples,
                                      class_names=job.class_names, units=batch.units)
            accepted += staging.append(batch, rows, skip_existing=True)
            atomic.write_json(progress, {"next": b1})
    finally:
        if staging is not None:
            staging.close()
    barrier(ctx)
    out: dict[str, Any] = {"rank": ctx.rank, "items": stop - start, "made": made, "accepted": accepted}
    if ctx.is_main:
        out["bank_size"] = merge_staging(bank_path, chunk=merge_chunk)
    barrier(ctx)
    return out


def _make(generator: Any, job: GenerationJob, todo: np.ndarray, chain: Any) -> tuple[ECGBatch, list[dict[str, Any]]]:
    """Generate items ``todo`` (consecutive runs share one request), filter, return accepted + rows."""
    request = job.request(int(todo[0]), int(todo[-1]) + 1)
    if len(request) != len(todo):
        request = request.select(todo - todo[0])
    cands = generator.generate(request)
    if len(cands) != len(todo):
        raise PluginError(f"generator {cands.info.name!r} returned {len(cands)} candidates for {len(todo)} requests")
    batch = cands.batch.to_numpy()
    if batch.labels is None or not np.array_equal(np.asarray(batch.labels), request.labels):
        raise PluginError(f"generator {cands.info.name!r} must label its candidates with the requested labels")
    if not batch.class_names:
        batch = attrs.evolve(batch, class_names=job.class_names)
    result = chain.score(batch, request.sources) if chain is not None else None
    keep = np.flatnonzero(result.accept) if result is not None else np.arange(len(batch))
    info = cands.info
    generator_row = {"name": info.name, "version": info.version, "checkpoint_sha256": info.checkpoint_sha256,
                     "params": dict(info.params)}
    rows = []
    for j in keep:
        i = int(todo[j])
        src = request.sources
        rows.append({
            "key": job.key(i), "index": i, "seed": int(cands.seeds[j]),
            "source_id": None if src is None else src.ids[j],
            "source_label": _class_name(job.class_names, None if src is None or src.labels is None else src.labels[j]),
            "target": job.class_names[int(batch.labels[j])],
            "generator": generator_row,
            **(result.sample_record(int(j)) if result is not None else {}),
        })
    return batch.select(keep), rows


def _class_name(names: tuple[str, ...], label: Any) -> str | None:
    return None if label is None or int(label) < 0 else names[int(label)]


def merge_staging(bank_path: str | Path, *, chunk: int = 4096) -> int:
    """Append every staging bank's samples to ``bank_path`` in global item order; remove the staging.

    Order comes from each key's item index, so staging banks of any world size (e.g. a run resumed
    with fewer processes) merge into the same bank. Returns the merged bank's size.
    """
    bank_path = Path(bank_path)
    root = staging_dir(bank_path)
    parts = sorted(p for p in root.glob("rank-*") if (p / BANK_META).exists()) if root.is_dir() else []
    banks = [Bank.open(p, verify="lazy") for p in parts]
    try:
        # keys are f"{prefix}:{index}": sort on the index without reading every manifest row
        entries = sorted((int(key.rsplit(":", 1)[1]), b, pos) for b, bank in enumerate(banks)
                         for pos, key in enumerate(bank.keys))
        # staging banks of an earlier world size may hold an item again: keep its first copy
        entries = [e for k, e in enumerate(entries) if k == 0 or e[0] != entries[k - 1][0]]
        if not entries:
            size = len(Bank.open(bank_path, verify="none")) if (bank_path / BANK_META).exists() else 0
        else:
            first = banks[entries[0][1]]
            with Bank.open_or_create(bank_path, fs=first.fs, leads=first.leads,
                                     samples_per_window=first.samples_per_window, class_names=first.class_names,
                                     units=first.units) as final:
                for c0 in range(0, len(entries), chunk):
                    _append_chunk(final, banks, entries[c0:c0 + chunk])
                size = len(final)
    finally:
        for bank in banks:
            bank.close()
    if root.is_dir():
        shutil.rmtree(root)
    return size


def _append_chunk(final: Bank, banks: list[Bank], entries: list[tuple[int, int, int]]) -> None:
    first = banks[entries[0][1]]
    signals = np.empty((len(entries), len(first.leads), first.samples_per_window), dtype=np.float32)
    labels = np.empty(len(entries), dtype=np.int64)
    rows: list[dict[str, Any]] = [{}] * len(entries)
    which = np.array([b for _, b, _ in entries])
    pos = np.array([p for _, _, p in entries])
    for b in np.unique(which):
        sel = np.flatnonzero(which == b)
        signals[sel] = banks[b].signals(pos[sel])
        labels[sel] = banks[b].labels[pos[sel]]
        for s, row in zip(sel, banks[b].rows(pos[sel])):
            rows[s] = row
    batch = ECGBatch(signals, first.fs, first.leads, labels=labels, class_names=first.class_names,
                     ids=[r["key"] for r in rows], units=first.units)
    final.append(batch, rows, skip_existing=True)


__all__ = ["GenerationJob", "generate_sharded", "merge_staging", "staging_dir"]
