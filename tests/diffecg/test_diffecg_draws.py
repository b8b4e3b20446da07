"""Point estimates from several draws (median / mean), batched as extra rows, and the lr schedule."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.errors import ValidationError
from augframe.protocols import GenerationRequest
from augframe_diffecg.generator import draw_seeds
from augframe_diffecg.masks import long_gap_mask
from augframe_diffecg.train import TrainSettings, lr_at


def _req(beats, mask, **opts):
    return GenerationRequest.complete(beats, mask, seed=21, steps=3, **opts)


def _draws_by_hand(gen, beats, mask, k):
    """Each draw as its own single-draw request with the documented per-draw seeds."""
    req = _req(beats, mask)
    seeds = draw_seeds(req.seeds, k).reshape(len(beats), k)
    outs = []
    for d in range(k):
        one = GenerationRequest("complete", req.labels, seeds[:, d], sources=beats, mask=mask,
                                class_names=beats.class_names, options={"steps": 3})
        outs.append(gen.generate(one).batch.numpy())
    return np.stack(outs, axis=1)


def test_draw_seeds_are_distinct_and_draw_zero_is_the_sample_seed():
    seeds = np.array([5, 9, 5], dtype=np.int64)
    s = draw_seeds(seeds, 4).reshape(3, 4)
    assert s[:, 0].tolist() == [5, 9, 5]
    assert len(np.unique(s[:2])) == 8           # distinct across draws and samples
    assert np.array_equal(s[0], s[2])           # a function of the sample's seed alone
    assert np.array_equal(draw_seeds(seeds, 1), seeds)
    many = draw_seeds(seeds, 32).reshape(3, 32)  # nested medians: draw j's seed ignores how many draws
    for k in (1, 8, 16):
        assert np.array_equal(many[:, :k], draw_seeds(seeds, k).reshape(3, k))


@pytest.mark.parametrize("aggregate", ["median", "mean"])
def test_aggregate_of_k_draws_matches_the_draws_one_by_one(tiny_beat_generator, cinc_beats, aggregate):
    beats = cinc_beats.select(np.arange(3))
    mask = long_gap_mask(beats.signals.shape, 0.4, seed=3)
    k = 4
    out = tiny_beat_generator.generate(_req(beats, mask, draws=k, aggregate=aggregate))
    by_hand = _draws_by_hand(tiny_beat_generator, beats, mask, k)
    expected = np.median(by_hand, axis=1) if aggregate == "median" else by_hand.mean(axis=1)
    y = out.batch.numpy()
    np.testing.assert_allclose(y, np.where(mask, beats.numpy(), expected), atol=1e-5, rtol=0)
    assert np.array_equal(y[mask], beats.numpy()[mask])              # known samples still exact
    assert out.batch.meta["point_estimate"].tolist() == [f"{aggregate} of {k} draws"] * 3
    assert out.batch.meta["draws"].tolist() == [k] * 3
    # draws really differ, so the aggregate is not one of them
    assert not np.allclose(by_hand[:, 0], by_hand[:, 1])
    # one draw is the plain single-sample output
    single = tiny_beat_generator.generate(_req(beats, mask)).batch.numpy()
    np.testing.assert_allclose(single, by_hand[:, 0], atol=1e-5, rtol=0)


def test_draws_are_batch_size_invariant(tiny_beat_generator, cinc_beats):
    beats = cinc_beats.select(np.arange(5))
    mask = long_gap_mask(beats.signals.shape, 0.3, seed=1)
    req = _req(beats, mask, draws=3)
    a = tiny_beat_generator.generate(req).batch.numpy()
    old = tiny_beat_generator.batch_size
    try:
        tiny_beat_generator.batch_size = 4  # draws of one sample split across chunks
        b = tiny_beat_generator.generate(req).batch.numpy()
    finally:
        tiny_beat_generator.batch_size = old
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    np.testing.assert_allclose(tiny_beat_generator.generate(req.select([4, 0])).batch.numpy(), a[[4, 0]],
                               atol=1e-5, rtol=0)


def test_generator_default_draws_apply_to_completion_only(tiny_beat_generator, cinc_beats):
    beats = cinc_beats.select(np.arange(2))
    mask = long_gap_mask(beats.signals.shape, 0.3, seed=1)
    old = tiny_beat_generator.draws
    try:
        tiny_beat_generator.draws = 3
        out = tiny_beat_generator.generate(_req(beats, mask))
        assert out.batch.meta["point_estimate"].tolist() == ["median of 3 draws"] * 2
        gen = tiny_beat_generator.generate(GenerationRequest.sample([0, 1], seed=0, steps=2))
        assert gen.batch.meta["point_estimate"].tolist() == ["single draw"] * 2
    finally:
        tiny_beat_generator.draws = old


def test_bad_draw_options(tiny_beat_generator, cinc_beats):
    beats = cinc_beats.select(np.arange(2))
    mask = long_gap_mask(beats.signals.shape, 0.3, seed=1)
    with pytest.raises(ValidationError, match="draws=0"):
        tiny_beat_generator.generate(_req(beats, mask, draws=0))
    with pytest.raises(ValidationError, match="aggregate='mode'"):
        tiny_beat_generator.generate(_req(beats, mask, draws=2, aggregate="mode"))
    with pytest.raises(ValidationError, match="only\\s+completion requests"):
        tiny_beat_generator.generate(GenerationRequest.sample([0], seed=0, draws=4))


def test_lr_warmup_then_cosine():
    s = TrainSettings(steps=110, lr=1e-3, warmup_steps=10, lr_schedule="cosine")
    lrs = np.array([lr_at(i, s) for i in range(110)])
    np.testing.assert_allclose(lrs[:10], 1e-3 * np.arange(1, 11) / 10)
    assert lrs[10] == pytest.approx(1e-3) and np.all(np.diff(lrs[10:]) <= 0)
    assert lrs[-1] == pytest.approx(1e-4, rel=0.01)
    const = TrainSettings(steps=50, lr=1e-3, warmup_steps=0)
    assert {lr_at(i, const) for i in range(50)} == {1e-3}
    with pytest.raises(ValidationError, match="lr_schedule="):
        TrainSettings(lr_schedule="step")
