"""An evaluation result is a pure function of its inputs: no wall-clock time inside eval/NAME.json."""

from __future__ import annotations

import itertools
import time


def test_fidelity_result_does_not_embed_elapsed_time(cinc_windows, standin, registry, monkeypatch):
    src, syn = standin(cinc_windows, 8, seed=0)
    ticks = itertools.accumulate(itertools.count(1000.0, 1000.0))  # each clock read jumps further: any
    # elapsed time measured by the evaluator differs between the two calls
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks))
    ev = registry.create("evaluator", "fidelity", {"judge": None})
    first = ev.evaluate(cinc_windows, syn, sources=src).to_json()
    second = ev.evaluate(cinc_windows, syn, sources=src).to_json()
    assert first == second
