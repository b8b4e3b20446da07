"""One model, three tasks, chosen by the mask: shapes, exact known samples, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.protocols import Candidates, GenerationRequest
from augframe_diffecg.masks import forecast_mask, long_gap_mask, missing_leads_mask, random_gaps_mask


def _complete(gen, batch, mask, seed=5, **opts):
    return gen.generate(GenerationRequest.complete(batch, mask, seed=seed, **opts))


def test_generation_is_class_conditional_sampling(tiny_beat_generator, cinc_beats):
    req = GenerationRequest.sample([0, 1, 1, 0, -1], seed=3, class_names=cinc_beats.class_names)
    out = tiny_beat_generator.generate(req)
    assert isinstance(out, Candidates)
    assert out.batch.signals.shape == (5, 1, cinc_beats.n_samples)
    assert out.batch.fs == cinc_beats.fs and out.batch.leads == cinc_beats.leads
    assert out.batch.labels.tolist() == [0, 1, 1, 0, -1]
    assert np.isfinite(out.batch.numpy()).all()
    assert out.info.name == "diffecg" and out.info.params["steps"] == 4
    # different seeds give different ECGs
    assert not np.allclose(out.batch.numpy()[0], out.batch.numpy()[3])


@pytest.mark.parametrize("kind", ["random_gaps", "long_gap", "forecast"])
def test_completion_keeps_known_samples_exactly(tiny_beat_generator, cinc_beats, kind):
    beats = cinc_beats.select(np.arange(6))
    shape = beats.signals.shape
    mask = {"random_gaps": random_gaps_mask(shape, 0.3, seed=1, chunk=10),
            "long_gap": long_gap_mask(shape, 0.5, seed=2),
            "forecast": forecast_mask(shape, horizon=64)}[kind]
    out = _complete(tiny_beat_generator, beats, mask)
    x, y = beats.numpy(), out.batch.numpy()
    assert y.shape == x.shape
    assert np.array_equal(y[mask], x[mask])            # bit-exact where known
    assert not np.allclose(y[~mask], x[~mask])         # and something was generated elsewhere
    assert out.source_ids == beats.ids
    np.testing.assert_allclose(out.batch.meta["known_fraction"], mask.reshape(6, -1).mean(1))


def test_missing_leads_on_multilead_windows(tiny_window_generator):
    gen, batch = tiny_window_generator
    sub = batch.select(np.arange(2))
    mask = missing_leads_mask(sub.signals.shape, [1])
    out = _complete(gen, sub, mask, steps=2)
    assert out.batch.signals.shape == (2, 2, 2500) and out.batch.leads == ("I", "II")
    assert np.array_equal(out.batch.numpy()[:, 0], sub.numpy()[:, 0])
    assert not np.allclose(out.batch.numpy()[:, 1], sub.numpy()[:, 1])


def test_same_seed_same_output_and_batch_size_invariance(tiny_beat_generator, cinc_beats):
    beats = cinc_beats.select(np.arange(7))
    mask = long_gap_mask(beats.signals.shape, 0.3, seed=4)
    req = GenerationRequest.complete(beats, mask, seed=11, steps=3, eta=0.5)
    a = tiny_beat_generator.generate(req).batch.numpy()
    b = tiny_beat_generator.generate(req).batch.numpy()
    assert np.array_equal(a, b)
    old = tiny_beat_generator.batch_size
    try:
        tiny_beat_generator.batch_size = 2
        c = tiny_beat_generator.generate(req).batch.numpy()
    finally:
        tiny_beat_generator.batch_size = old
    np.testing.assert_allclose(c, a, atol=1e-5, rtol=0)
    # a sub-request keeps each sample's seed, so its samples are the same ECGs
    sub = tiny_beat_generator.generate(req.select([5, 1])).batch.numpy()
    np.testing.assert_allclose(sub, a[[5, 1]], atol=1e-5, rtol=0)
    # another run seed changes the unknown part
    other = tiny_beat_generator.generate(GenerationRequest.complete(beats, mask, seed=12, steps=3, eta=0.5))
    assert not np.allclose(other.batch.numpy()[~mask], a[~mask])


def test_step_count_is_a_call_option(tiny_beat_generator, cinc_beats):
    beats = cinc_beats.select(np.arange(2))
    mask = forecast_mask(beats.signals.shape, 50)
    one = _complete(tiny_beat_generator, beats, mask, steps=1).batch.numpy()
    three = _complete(tiny_beat_generator, beats, mask, steps=3).batch.numpy()
    assert not np.allclose(one, three)
    assert tiny_beat_generator.generate(
        GenerationRequest.complete(beats, mask, seed=0, steps=3)).info.params["steps"] == 4  # generator default kept


def test_conformance_kit(tiny_beat_generator, cinc_beats):
    from augframe.testing import check_generator

    report = check_generator(tiny_beat_generator, sources=cinc_beats.select(np.arange(6)), options={"steps": 2})
    assert any(rule.startswith("complete: keeps the known part") for rule in report.passed)
    assert any(rule.startswith("sample: batch-size invariant") for rule in report.passed)
