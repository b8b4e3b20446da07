"""Filters composed as a chain: every filter scores every candidate; a candidate must pass them all.

The chain's verdict for sample i is ``accept = AND_k accept_k[i]`` (and, where a recipe sets
``min_score``, ``score_k[i] >= min_score``); its score is the minimum over filters ("a sample is as
plausible as its weakest check"), which keeps the score in [0, 1], is 0 as soon as one filter
gives 0, and does not reward passing many lenient filters the way a product or mean would. Every
filter scores every candidate (no short-circuit), so the manifest records each filter's full
verdict even for rejected samples and the chain does not depend on filter order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from augframe.errors import PluginError, ValidationError
from augframe.protocols import Filter, FilterResult
from augframe.signals import ECGBatch


@attrs.frozen
class ChainLink:
    """One filter in a chain, with an optional extra score threshold."""

    filter: Any
    min_score: float | None = None

    @property
    def name(self) -> str:
        return str(self.filter.name)


@attrs.frozen(eq=False)
class ChainResult:
    """Per-filter results plus the combined verdict of the chain."""

    results: tuple[FilterResult, ...]
    accept: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.accept)

    @property
    def acceptance_rate(self) -> float:
        return float(self.accept.mean()) if len(self) else 0.0

    def per_filter_acceptance(self) -> dict[str, float]:
        return {r.name: float(r.accept.mean()) if len(r) else 0.0 for r in self.results}

    def reasons(self, i: int) -> list[str]:
        """Why sample i lost points, prefixed by the filter that said so."""
        return [f"{r.name}: {why}" for r in self.results for why in r.reasons[i]]

    def sample_record(self, i: int) -> dict[str, Any]:
        """Sample i's chain verdict and each filter's record, JSON-ready (for the bank manifest)."""
        return {
            "score": float(self.scores[i]),
            "accept": bool(self.accept[i]),
            "filters": {r.name: r.sample_record(i) for r in self.results},
        }

    def as_filter_result(self, name: str = "chain") -> FilterResult:
        """The combined verdict as one FilterResult (checks = each filter's score)."""
        return FilterResult(
            name=name, scores=self.scores, accept=self.accept,
            checks={r.name: r.scores for r in self.results},
            reasons=tuple(tuple(self.reasons(i)) for i in range(len(self))),
        )


class FilterChain:
    """Runs filters in order over candidates (and their sources) and combines the verdicts."""

    def __init__(self, links: Iterable[ChainLink | Any]) -> None:
        self.links: tuple[ChainLink, ...] = tuple(
            link if isinstance(link, ChainLink) else ChainLink(link) for link in links
        )
        for link in self.links:
            if not isinstance(link.filter, Filter):
                raise PluginError(f"{type(link.filter).__name__} in the filter chain does not satisfy "
                                  "augframe.protocols.Filter (name, score(candidates, sources))")
            if link.min_score is not None and not 0.0 <= link.min_score <= 1.0:
                raise ValidationError(f"filter {link.name!r}: min_score={link.min_score} must be in [0, 1]")
        names = [link.name for link in self.links]
        if len(set(names)) != len(names):
            raise ValidationError(f"filter names in a chain must be unique (got {names}); the manifest keys on them")

    @classmethod
    def from_specs(cls, specs: Sequence[Any], registry: Any) -> FilterChain:
        """Build from recipe ``[[filters]]`` entries (objects with name, params, min_score)."""
        return cls(ChainLink(registry.create("filter", s.name, s.params), s.min_score) for s in specs)

    def __len__(self) -> int:
        return len(self.links)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(link.name for link in self.links)

    def score(self, candidates: ECGBatch, sources: ECGBatch | None = None,
              refused: Sequence[str] | None = None) -> ChainResult:
        """Score ``candidates`` with every filter; an empty chain accepts everything with score 1.

        ``refused`` (``Candidates.refused``) adds a first verdict named "generator" that rejects the
        samples the generator itself refused, with its reason.
        """
        n = len(candidates)
        accept = np.ones(n, dtype=bool)
        scores = np.ones(n, dtype=np.float64)
        results = []
        if refused is not None and any(refused):
            ok = np.array([not r for r in refused], dtype=bool)
            results.append(FilterResult("generator", ok.astype(np.float64), ok,
                                        reasons=tuple((r,) if r else () for r in refused)))
            accept &= ok
            scores = np.minimum(scores, ok.astype(np.float64))
        for link in self.links:
            res = link.filter.score(candidates, sources)
            if not isinstance(res, FilterResult) or len(res) != n:
                got = len(res) if isinstance(res, FilterResult) else type(res).__name__
                raise PluginError(f"filter {link.name!r} returned {got} results for {n} candidates; "
                                  "score() must return one FilterResult entry per candidate")
            if res.name != link.name:
                res = attrs.evolve(res, name=link.name)
            acc = res.accept.copy()
            if link.min_score is not None:
                low = res.scores < link.min_score
                if low.any():
                    acc &= ~low
                    res = attrs.evolve(res, accept=acc, reasons=tuple(
                        (*r, f"score {s:.3f} below min_score {link.min_score:g}") if lo else r
                        for r, s, lo in zip(res.reasons, res.scores, low)))
            accept &= acc
            scores = np.minimum(scores, res.scores)
            results.append(res)
        return ChainResult(tuple(results), accept, scores)

    def __call__(self, candidates: ECGBatch, sources: ECGBatch | None = None) -> ChainResult:
        return self.score(candidates, sources)


def chain_summary(results: Sequence[ChainResult]) -> Mapping[str, Any]:
    """Acceptance over several chain results (e.g. all batches of a run), overall and per filter."""
    total = sum(len(r) for r in results)
    if not total:
        return {"candidates": 0, "accepted": 0, "acceptance": 0.0, "per_filter": {}}
    accepted = int(sum(int(r.accept.sum()) for r in results))
    per: dict[str, list[int]] = {}
    for r in results:
        for fr in r.results:
            a = per.setdefault(fr.name, [0, 0])
            a[0] += int(fr.accept.sum())
            a[1] += len(fr)
    return {"candidates": total, "accepted": accepted, "acceptance": accepted / total,
            "per_filter": {k: v[0] / v[1] for k, v in per.items()}}
