"""Resume: a run continues only its own plan, and a run killed at any point resumes to the same bank."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from augframe import pipeline
from augframe import recipe as R
from augframe.bank import Bank
from augframe.errors import BankError
from core_toys import RECIPE, toy_registry

HERE = Path(__file__).resolve().parent


def _recipe(out, extra="", replace=()):
    text = RECIPE.format(out=str(out).replace("\\", "/"), extra=extra)
    for old, new in replace:
        assert old in text
        text = text.replace(old, new)
    return R.loads(text)


def _gen(recipe):
    return pipeline.run(recipe, registry=toy_registry(), stages=("fit", "generate"), log=lambda m: None)


def _snapshot(path):
    b = Bank.open(path, verify="full")
    order = np.argsort(b.keys)
    return [b.keys[i] for i in order], b.signals(order)


@pytest.mark.parametrize("change, named", [
    (lambda r: r.evolve_run(seed=1), "seed: 7 -> 1"),
    (lambda r: R.loads(r.to_toml().replace("scale = 0.3", "scale = 0.5")), "generator.params.scale: 0.3 -> 0.5"),
    (lambda r: R.loads(r.to_toml().replace("max_ratio = 1.3", "max_ratio = 2.0")), "filters"),
])
def test_a_changed_plan_is_refused_naming_the_keys(tmp_path, change, named):
    first = _recipe(tmp_path / "run")
    _gen(first)
    before = _snapshot(tmp_path / "run" / "bank")
    with pytest.raises(BankError, match="made by another plan") as err:
        _gen(change(first))
    assert named in str(err.value)
    after = _snapshot(tmp_path / "run" / "bank")
    assert before[0] == after[0] and np.array_equal(before[1], after[1])  # nothing mixed in


def test_count_and_batch_size_do_not_change_the_plan(tmp_path):
    _gen(_recipe(tmp_path / "run", extra="count = 3"))
    res = _gen(_recipe(tmp_path / "run", extra="count = 5", replace=[("batch_size = 7", "batch_size = 2")]))
    assert all(s["accepted_total"] == 5 for s in res.generation["per_target"].values())


def test_a_bank_without_a_plan_record_is_not_resumed(tmp_path):
    _gen(_recipe(tmp_path / "run"))
    (tmp_path / "run" / "bank" / "plan.json").unlink()
    with pytest.raises(BankError, match="no plan.json"):
        _gen(_recipe(tmp_path / "run"))


def test_a_truncated_generation_state_is_rebuilt_from_the_bank(tmp_path):
    clean = _gen(_recipe(tmp_path / "run"))
    state = tmp_path / "run" / "generation-state.json"
    state.write_text(state.read_text()[:20])
    again = _gen(_recipe(tmp_path / "run"))
    assert all(s["accepted_now"] == 0 for s in again.generation["per_target"].values())
    assert json.loads(state.read_text())  # rewritten whole
    assert len(Bank.open(clean.bank_path)) == sum(s["accepted_total"] for s in again.generation["per_target"].values())


_CHILD = textwrap.dedent('''
    import os, signal, sys
    sys.path[:0] = [{here!r}]
    from augframe import atomic, pipeline, recipe
    from core_toys import PhaseShiftGenerator, toy_registry

    kill_at = int(sys.argv[2])  # the n-th write or generator call (counted together) dies with SIGKILL
    calls = [0]

    def dying(fn):
        def wrapper(*a, **k):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            out = fn(*a, **k)
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        return wrapper

    PhaseShiftGenerator.generate = dying(PhaseShiftGenerator.generate)
    atomic.write_npy = dying(atomic.write_npy)
    atomic.write_json = dying(atomic.write_json)
    pipeline.run(recipe.load(sys.argv[1]), registry=toy_registry(), stages=("fit", "generate"), log=lambda m: None)
''')


def test_kill_anywhere_then_resume_gives_the_uninterrupted_bank(tmp_path):
    """SIGKILL at seeded-random points (inside generator calls, before/after each shard's .npy and .json
    write), several times over the same run, then one resume: the bank equals an uninterrupted run's."""
    clean = _gen(_recipe(tmp_path / "clean"))
    want = _snapshot(clean.bank_path)
    recipe_file = tmp_path / "r.toml"
    recipe_file.write_text(_recipe(tmp_path / "killed").to_toml())
    child = tmp_path / "child.py"
    child.write_text(_CHILD.format(here=str(HERE)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), str(HERE.parents[1] / "plugins"),
                                                        os.environ.get("PYTHONPATH", "")])}
    rng = np.random.default_rng(17)
    kills = 0
    for point in sorted(rng.choice(np.arange(2, 30), size=3, replace=False)):
        proc = subprocess.run([sys.executable, str(child), str(recipe_file), str(point)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr
        kills += proc.returncode == -signal.SIGKILL
    assert kills >= 2  # the loop really interrupted the run
    _gen(R.load(recipe_file))
    got = _snapshot(tmp_path / "killed" / "bank")
    assert got[0] == want[0] and np.array_equal(got[1], want[1])
    assert not list((tmp_path / "killed" / "bank").glob("*.tmp"))
