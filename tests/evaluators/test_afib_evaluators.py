"""The fidelity and TSTR evaluators end to end on real CinC windows (tiny classifiers, seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.errors import ValidationError
from augframe.protocols import EvalContext

import augframe_afib.fidelity as fidelity_mod
import augframe_afib.tstr as tstr_mod

FAST_JUDGE = {"judge_params": {"width": 0.0625, "depth": [1, 1, 1, 1]}, "judge_epochs": 1,
              "judge_max_steps_per_epoch": 1, "n_perm": 30}


@pytest.fixture(scope="module")
def pair(cinc_short, standin):
    return standin(cinc_short, 20, seed=2)


def test_fidelity_without_judge_measures_pairs_and_rhythm(cinc_windows, standin, registry):
    src, syn = standin(cinc_windows, 16, seed=0)
    res = registry.create("evaluator", "fidelity", {"judge": None}).evaluate(cinc_windows, syn, sources=src)
    m = res.metrics
    assert m["pair.pearson_r.mean"] > 0.9 and m["pair.ssim.mean"] > 0.5 and m["pair.psnr_db.mean"] > 15
    assert set(res.tables) == {"pairwise", "rhythm"}
    assert "rhythm.all.heart_rate_bpm.ks" in m
    d = res.details["distributions"]
    assert set(d["heart_rate_bpm"]) == {"real", "synthetic"} and len(d["psnr_db"]["synthetic vs source"]) == 16
    # the link through meta source_id alone gives the same pairs
    linked = registry.create("evaluator", "fidelity", {"judge": None}).evaluate(cinc_windows, syn)
    assert linked.metrics["pair.mse.mean"] == pytest.approx(m["pair.mse.mean"])


def test_fidelity_with_a_trained_frozen_judge_resumes(cinc_short, pair, registry, tmp_path, monkeypatch):
    src, syn = pair
    ev = registry.create("evaluator", "fidelity", FAST_JUDGE)
    ctx = EvalContext(seed=1, workdir=tmp_path)
    res = ev.evaluate(cinc_short, syn, sources=src, context=ctx)
    m = res.metrics
    assert m["embed.frechet"] >= 0 and 0 < m["embed.mmd_p"] <= 1
    assert 0 <= m["judge.real_heldout_accuracy"] <= 1
    assert "judge" in res.tables and any("frozen" in n for n in res.notes)
    assert len(res.details["distributions"]["judge_p_target"]["synthetic"]) == len(syn)

    def fail(*a, **k):
        raise AssertionError("the judge was trained again")

    monkeypatch.setattr(fidelity_mod, "train_and_test", fail)
    again = ev.evaluate(cinc_short, syn, sources=src, context=ctx)
    assert again.metrics["embed.frechet"] == pytest.approx(m["embed.frechet"])


def test_fidelity_bad_input(cinc_short, pair, registry):
    src, syn = pair
    ev = registry.create("evaluator", "fidelity", {"judge": None})
    with pytest.raises(ValidationError, match="align"):
        ev.evaluate(cinc_short, syn, sources=src.select(np.arange(5)))
    with pytest.raises(ValidationError, match="empty"):
        ev.evaluate(cinc_short, syn.select(np.zeros(0, dtype=np.int64)))


def test_tstr_trts_trtr(cinc_short, pair, registry, tmp_path, monkeypatch):
    _, syn = pair
    ev = registry.create("evaluator", "tstr", {"classifier_params": {"width": 0.0625, "depth": [1, 1, 1, 1]},
                                               "max_epochs": 1, "max_steps_per_epoch": 1, "batch_size": 16})
    ctx = EvalContext(seed=0, workdir=tmp_path)
    res = ev.evaluate(cinc_short, syn, context=ctx)
    rows = res.tables["tstr"].rows
    assert [r[1] for r in rows] == ["TRTR", "TRTS", "TSTR"]
    for k in ("trtr.f1", "trts.f1", "tstr.f1"):
        assert 0.0 <= res.metrics[k] <= 1.0
    assert rows[1][5] == len(syn)  # TRTS tests on every synthetic ECG
    assert any("left out of TSTR" in n for n in res.notes)  # synthetic made from real test patients
    monkeypatch.setattr(tstr_mod, "train_and_test", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    np.testing.assert_equal(ev.evaluate(cinc_short, syn, context=ctx).metrics, res.metrics)


def test_tstr_matched_real_trains_on_as_many_real_ecgs_per_class_as_synthetic(cinc_short, pair, registry, tmp_path,
                                                                              monkeypatch):
    """TRTR-matched: a draw of the real training part with TSTR's class counts; the runs stored without it
    are reused (only the matched one trains)."""
    _, syn = pair
    params = {"classifier": "rr-features", "max_epochs": 1}
    ctx = EvalContext(seed=0, workdir=tmp_path)
    plain = registry.create("evaluator", "tstr", params).evaluate(cinc_short, syn, context=ctx)
    ev = registry.create("evaluator", "tstr", {**params, "matched_real": True})
    sp = ev.split(cinc_short, syn, None, 0)
    assert set(sp.real_matched) <= set(sp.real_tr)
    for c in (0, 1):
        want = min(int(np.sum(syn.labels[sp.syn_tr] == c)), int(np.sum(cinc_short.labels[sp.real_tr] == c)))
        assert int(np.sum(cinc_short.labels[sp.real_matched] == c)) == want
    np.testing.assert_array_equal(sp.real_matched, ev.split(cinc_short, syn, None, 0).real_matched)
    trained = []
    real_train = tstr_mod.train_and_test
    monkeypatch.setattr(tstr_mod, "train_and_test", lambda *a, **k: trained.append(k["desc"]) or real_train(*a, **k))
    res = ev.evaluate(cinc_short, syn, context=ctx)
    assert trained == ["rr-features.r0.train_real_matched"]
    assert [r[1] for r in res.tables["tstr"].rows] == ["TRTR", "TRTS", "TSTR", "TRTR-matched"]
    assert list(res.tables["tstr"].rows[3][2:5]) == ["real", "real", len(sp.real_matched)]
    assert 0.0 <= res.metrics["trtr_matched.auroc"] <= 1.0
    assert res.metrics["tstr.auroc"] == plain.metrics["tstr.auroc"]
