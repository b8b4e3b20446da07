"""Resume: a run continues only its own plan, and a run killed at any point resumes to the same bank."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from augframe import pipeline
from augframe import recipe as R
from augframe.bank import Bank
from augframe.errors import BankError
from core_toys import RECIPE, toy_registry



def _recipe(out, extra="", replace=()):
    text = RECIPE.format(out=str(out).replace("\\", "/"), extra=extra)
    for old, new in replace:
        assert old in text
        text = text.replace(old, new)
    return R.loads(text)


def _gen(recipe):
    return pipeline.run(recipe, registry=toy_registry(), stages=("fit", "generate"))


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
    assert R.load(tmp_path / "run" / "recipe.toml") == first  # the folder still describes its bank
    with pytest.raises(BankError, match=named):  # nor is the old bank evaluated under the new recipe
        pipeline.run(change(first), registry=toy_registry(), stages=("evaluate",))


def test_a_larger_count_extends_the_same_plan_and_batch_size_is_part_of_it(tmp_path):
    _gen(_recipe(tmp_path / "run", extra="count = 3"))
    res = _gen(_recipe(tmp_path / "run", extra="count = 5"))
    assert all(s["accepted_total"] == 5 for s in res.generation["per_target"].values())
    fresh = _gen(_recipe(tmp_path / "fresh", extra="count = 5"))
    a, b = _snapshot(res.bank_path), _snapshot(fresh.bank_path)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])  # the same bank as asking for 5 at once
    with pytest.raises(BankError, match="generation.batch_size: 7 -> 2"):
        _gen(_recipe(tmp_path / "run", extra="count = 5", replace=[("batch_size = 7", "batch_size = 2")]))


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


def batch_dependent(generate):
    """A generator whose floats depend on its batch, as real ones may (e.g. ~1e-7 from batched kernels):
    a resume that regroups candidates would change the bank."""
    import attrs

    def wrapped(self, request):
        cands = generate(self, request)
        x = cands.batch.numpy() + np.float32(1e-3) * len(request.labels)
        return attrs.evolve(cands, batch=cands.batch.with_signals(x))
    return wrapped


def _run_and_die_at(recipe, point):
    """In a forked child: generate, and SIGKILL itself at the ``point``-th write or generator call
    (counted before and after each); returns the child's wait status."""
    pid = os.fork()
    if pid:
        return os.waitpid(pid, 0)[1]
    try:  # the child never returns into pytest
        from augframe import atomic
        from core_toys import PhaseShiftGenerator

        calls = [0]

        def dying(fn):
            def wrapper(*a, **k):
                for _ in range(2):
                    calls[0] += 1
                    if calls[0] == point:
                        os.kill(os.getpid(), signal.SIGKILL)
                    if _ == 0:
                        out = fn(*a, **k)
                return out
            return wrapper

        PhaseShiftGenerator.generate = dying(PhaseShiftGenerator.generate)  # already batch-dependent (fork)
        atomic.write_npy = dying(atomic.write_npy)
        atomic.write_json = dying(atomic.write_json)
        _gen(recipe)
    finally:
        os._exit(0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_anywhere_then_resume_gives_the_uninterrupted_bank(tmp_path, monkeypatch):
    """SIGKILL at seeded-random points (inside generator calls, before/after each shard's .npy and .json
    write), several times over the same run, then one resume: the bank equals an uninterrupted run's,
    bit for bit, although the generator's floats depend on how candidates are batched."""
    from core_toys import PhaseShiftGenerator

    monkeypatch.setattr(PhaseShiftGenerator, "generate", batch_dependent(PhaseShiftGenerator.generate))
    clean = _gen(_recipe(tmp_path / "clean"))
    want = _snapshot(clean.bank_path)
    killed = _recipe(tmp_path / "killed")
    rng = np.random.default_rng(17)
    kills = 0
    for point in sorted(rng.choice(np.arange(2, 40), size=6, replace=False)):
        status = _run_and_die_at(killed, int(point))
        assert (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL) or \
            (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0), status
        kills += os.WIFSIGNALED(status)
    assert kills >= 4  # the loop really interrupted the run
    _gen(killed)
    got = _snapshot(tmp_path / "killed" / "bank")
    assert got[0] == want[0] and np.array_equal(got[1], want[1])
    assert not list((tmp_path / "killed" / "bank").glob(".*.tmp"))
