"""The completion prior option: C1 filled by linear interpolation, the chain on the residual."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augframe.diffusion import NoiseSchedule
from augframe.errors import ValidationError
from augframe.protocols import GenerationRequest
from augframe_diffecg.baselines import linear_interpolation
from augframe_diffecg.config import DiffECGConfig
from augframe_diffecg.generator import DiffECGGenerator
from augframe_diffecg.masks import long_gap_mask, training_masks
from augframe_diffecg.model import DiffECGUNet
from augframe_diffecg.prior import linear_fill, prior_fill, repeat_fill
from augframe_diffecg.sampler import ddim_sample


def test_linear_fill_is_numpy_interp_and_keeps_known_samples():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 2, 150)).astype(np.float32)
    mask = training_masks(x.shape, rng)
    mask[0] = False  # nothing known -> zeros
    mask[1, :, :40] = False  # gap at the start -> first known value held
    mask[1, :, -30:] = False  # gap at the end -> last known value held
    out = linear_fill(torch.from_numpy(x), torch.from_numpy(mask)).numpy()
    assert out.shape == x.shape
    assert np.array_equal(out[mask], x[mask])  # bit-exact where known
    np.testing.assert_allclose(out, linear_interpolation(x, mask), atol=1e-5)
    assert np.all(out[0] == 0)
    assert np.all(out[1, :, :40] == x[1, :, 40:41]) and np.all(out[1, :, -30:] == x[1, :, -31:-30])
    # a hand-checked gap: known 1 at t=2 and 4 at t=5 -> 2 and 3 in between
    row = torch.tensor([[[0.0, 0.0, 1.0, 9.0, 9.0, 4.0]]])
    m = torch.tensor([[[False, False, True, False, False, True]]])
    assert linear_fill(row, m).tolist() == [[[1.0, 1.0, 1.0, 2.0, 3.0, 4.0]]]
    assert torch.equal(prior_fill("none", row, m), torch.zeros_like(row))


@pytest.mark.parametrize("cond", ["stft", "both"])
def test_network_conditions_on_the_filled_known_part(cond):
    torch.manual_seed(0)
    m = DiffECGUNet(1, 2, width=8, mults=(1, 2), cond=cond, n_fft=32, hop=8, prior="linear")
    seen = {}
    m.spec.register_forward_hook(lambda mod, args, out: seen.update(spec=args[0].clone()))
    if cond == "both":
        m.conv_in.register_forward_hook(lambda mod, args, out: seen.update(conv_in=args[0].clone()))
    x, known = torch.randn(2, 1, 120), torch.randn(2, 1, 120)
    mask = torch.ones(2, 1, 120, dtype=torch.bool)
    mask[0, :, 30:60] = False
    mask[1, :, 90:] = False
    m(x, torch.tensor([5, 700]), known, mask, torch.tensor([0, 1]))
    fill = linear_fill(known * mask, mask)
    assert torch.equal(seen["spec"], fill)  # the STFT branch sees the fill, not zeros
    if cond == "both":
        assert torch.equal(seen["conv_in"][:, 2:3], fill)  # channels: x_t, mask, C1
    # the gap's content is still ignored: only the known samples define the fill
    known2 = known.clone()
    known2[~mask] = 7.0
    out = m(x, torch.tensor([5, 700]), known, mask, torch.tensor([0, 1]))
    assert torch.equal(out, m(x, torch.tensor([5, 700]), known2, mask, torch.tensor([0, 1])))


def test_repeat_fill_is_the_previous_beat_on_beat_pairs():
    """[neighbour | beat] with a gap in the beat: the fill is the neighbour's samples (the baseline)."""
    rng = np.random.default_rng(3)
    prev, cur = rng.normal(size=(5, 1, 40)), rng.normal(size=(5, 1, 40))
    pair = torch.from_numpy(np.concatenate([prev, cur], axis=-1)).float()
    gap = torch.from_numpy(long_gap_mask((5, 1, 40), 0.5, seed=0))
    mask = torch.cat([torch.ones_like(gap), gap], dim=-1)
    fill = prior_fill("repeat", pair, mask, period=40)
    expect = torch.where(gap, pair[..., 40:], pair[..., :40])  # the previous-beat baseline
    assert torch.equal(fill[..., 40:], expect) and torch.equal(fill[..., :40], pair[..., :40])
    # where one period earlier is unknown too, the linear fill stays
    mask2 = mask.clone()
    mask2[..., :40] = False
    mask2[..., 0] = True
    lin = linear_fill(pair * mask2, mask2)
    assert torch.equal(repeat_fill(pair, mask2, lin, 40)[..., 1:40], lin[..., 1:40])
    assert torch.equal(prior_fill("repeat", pair, mask, period=0), linear_fill(pair * mask, mask))
    with pytest.raises(ValidationError, match="period"):
        DiffECGConfig(prior="repeat", length=80, period=80)


class _PredictsZeroResidual(torch.nn.Module):
    """eps such that the predicted x_0 of the chain is exactly 0 (x_t = sqrt(1 - ab) eps)."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.ab = schedule.alphas_cumprod

    def forward(self, x, t, known, mask, labels):
        return x / (1 - self.ab[t]).sqrt()[:, None, None]


@pytest.mark.parametrize("prior", ["none", "linear", "repeat"])
def test_sampler_output_is_fill_plus_residual(prior):
    sched = DiffECGConfig().schedule()
    known = torch.randn(3, 1, 100)
    mask = torch.from_numpy(long_gap_mask((3, 1, 100), 0.3, seed=1))
    out = ddim_sample(_PredictsZeroResidual(sched), sched, known, mask, torch.tensor([0, 1, -1]),
                      np.array([1, 2, 3]), steps=5, prior=prior, period=30)
    expect = prior_fill(prior, known, mask, 30) if prior != "none" else torch.where(mask, known, 0.0)
    torch.testing.assert_close(out, expect, atol=1e-5, rtol=0)
    assert torch.equal(out[mask], known[mask])


def test_prior_generator_trains_and_completes(cinc_beats, tiny):
    gen = DiffECGGenerator(**tiny, prior="linear", train_steps=6, train_batch_size=8)
    gen.fit(cinc_beats, seed=0)
    assert gen.config.prior == "linear" and gen.info.params["prior"] == "linear"
    assert np.isfinite([r["loss"] for r in gen.train_log]).all()
    beats = cinc_beats.select(np.arange(6))
    mask = long_gap_mask(beats.signals.shape, 0.3, seed=2)
    req = GenerationRequest.complete(beats, mask, seed=4)
    a = gen.generate(req).batch.numpy()
    assert a.shape == beats.signals.shape and np.isfinite(a).all()
    assert np.array_equal(a[mask], beats.numpy()[mask])  # known samples bit-exact
    assert not np.allclose(a[~mask], linear_interpolation(beats.numpy(), mask)[~mask])  # the residual is sampled
    assert np.array_equal(a, gen.generate(req).batch.numpy())  # same seeds, same output
    sample = gen.generate(GenerationRequest.sample([0, 1], seed=0, class_names=gen.config.class_names))
    assert np.isfinite(sample.batch.numpy()).all()


def test_checkpoints_without_a_prior_load_as_none(tiny_beat_generator, cinc_beats, tmp_path):
    """Checkpoints written before the option existed have no "prior" key: they mean "none"."""
    from augframe.checkpoint import load_weights, save_weights

    path = tiny_beat_generator.save(tmp_path / "new.safetensors")
    state, meta = load_weights(path)
    assert meta["model"]["prior"] == "none"
    del meta["model"]["prior"]
    old = tmp_path / "old.safetensors"
    save_weights(old, state, meta)
    loaded = DiffECGGenerator(checkpoint=str(old), steps=4)
    assert loaded.config.prior == "none" and loaded.config == tiny_beat_generator.config
    beats = cinc_beats.select(np.arange(3))
    req = GenerationRequest.complete(beats, long_gap_mask(beats.signals.shape, 0.2, seed=0), seed=1)
    assert np.array_equal(loaded.generate(req).batch.numpy(), tiny_beat_generator.generate(req).batch.numpy())
    cfg = DiffECGConfig(prior="linear").to_dict()
    assert DiffECGConfig.from_dict(cfg).prior == "linear"
    with pytest.raises(ValidationError, match="prior='cubic'"):
        DiffECGConfig(prior="cubic")
    with pytest.raises(ValidationError, match="prior"):
        DiffECGGenerator(prior="cubic")
