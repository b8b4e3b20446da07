"""The rhythm-transplant generator: conformant, rhythm of the target class, QRS of the source."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from augframe.beats import detect_r_peaks
from augframe.errors import CheckpointError, PluginError
from augframe.filterchain import FilterChain
from augframe.plugins import Registry
from augframe.protocols import GenerationRequest
from augframe.testing import check_generator


@pytest.fixture(scope="module")
def demo():
    from augframe.data.demo import demo_windows

    return demo_windows(normalise=None)


@pytest.fixture(scope="module")
def halves(demo):
    """Even rows train the rhythm bank, odd rows are sources (different records)."""
    idx = np.arange(len(demo))
    return demo.select(idx[idx % 2 == 0]), demo.select(idx[idx % 2 == 1])


@pytest.fixture(scope="module")
def fitted(halves):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = Registry.discover().create("generator", "rhythm-transplant", {"per_class": 64})
    gen.fit(halves[0], seed=3)
    return gen


def rr_cv(x, fs):
    out = []
    for p in detect_r_peaks(x, fs):
        rr = np.diff(p)
        out.append(rr.std() / rr.mean() if len(rr) > 2 else np.nan)
    return np.asarray(out)


def test_conforms(fitted, halves):
    report = check_generator(fitted, sources=halves[1].select(np.arange(6)), kinds=["transfer"])
    assert report.passed, report


def test_declares_it_trained_against_no_judge(fitted):
    assert fitted.info.trained_against == ()


def test_transfers_take_the_target_class_rhythm(fitted, halves):
    src = halves[1]
    n_idx = np.flatnonzero(src.labels == 0)[:40]
    a_idx = np.flatnonzero(src.labels == 1)[:40]
    to_a = fitted.generate(GenerationRequest.transfer(src.select(n_idx), np.ones(40, int), seed=1))
    to_n = fitted.generate(GenerationRequest.transfer(src.select(a_idx), np.zeros(40, int), seed=2))
    x = src.numpy()[:, 0]
    cv_n, cv_a = np.nanmedian(rr_cv(x[n_idx], src.fs)), np.nanmedian(rr_cv(x[a_idx], src.fs))
    cv_to_a = np.nanmedian(rr_cv(to_a.batch.numpy()[:, 0], src.fs))
    cv_to_n = np.nanmedian(rr_cv(to_n.batch.numpy()[:, 0], src.fs))
    assert cv_n < 0.06 and cv_a > 0.12            # the real classes differ
    assert cv_to_a > 2.5 * cv_n                   # N sources now have an AF-like rhythm
    assert cv_to_n < 0.5 * cv_a                   # AF sources now have a sinus-like rhythm
    assert to_a.source_ids == tuple(src.select(n_idx).ids)


def test_r_amplitude_of_the_source_survives(fitted, halves):
    src = halves[1].select(np.arange(40))
    out = fitted.generate(GenerationRequest.transfer(src, 1 - src.labels, seed=4)).batch.numpy()[:, 0]
    x = src.numpy()[:, 0]
    amp = lambda sig: np.array([np.median(np.abs(s[p])) if len(p) else np.nan
                                for s, p in zip(sig, detect_r_peaks(sig, src.fs))])
    ratio = np.nanmedian(amp(out) / amp(x))
    assert 0.9 < ratio < 1.1


def test_refused_rows_are_rejected_by_the_chain(fitted, halves):
    src = halves[1].select(np.arange(3))
    flat = src.with_signals(np.concatenate([src.numpy()[:2], np.zeros_like(src.numpy()[:1])]))
    cands = fitted.generate(GenerationRequest.transfer(flat, np.ones(3, int), seed=0))
    assert [bool(r) for r in cands.refused] == [False, False, True]
    verdict = FilterChain([]).score(cands.batch, flat, refused=cands.refused)
    assert verdict.accept.tolist() == [True, True, False]
    assert "beats" in verdict.reasons(2)[0]


def test_save_load_round_trip(fitted, halves, tmp_path):
    path = tmp_path / "rt.safetensors"
    sha = fitted.save(path)
    gen = type(fitted)(checkpoint=str(path))
    assert gen.info.checkpoint_sha256 == sha
    req = GenerationRequest.transfer(halves[1].select(np.arange(4)), np.ones(4, int), seed=9)
    np.testing.assert_array_equal(gen.generate(req).batch.numpy(), fitted.generate(req).batch.numpy())


def test_errors_name_the_fix(tmp_path):
    gen = Registry.discover().create("generator", "rhythm-transplant", {})
    from augframe.testing import make_ecg_batch

    with pytest.raises(PluginError, match="fit"):
        gen.generate(GenerationRequest.transfer(make_ecg_batch(2), [0, 1], seed=0))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        type(gen)(checkpoint=str(bad))
