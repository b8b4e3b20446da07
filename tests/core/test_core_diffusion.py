"""The core's diffusion toolkit: schedules, timestep grids, noising and the DDIM / DDPM updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augframe.diffusion import NoiseSchedule, guide
from augframe.errors import ValidationError


def test_linear_schedule_tables_and_precision():
    s = NoiseSchedule.linear(1000, 1e-4, 0.02)
    assert s.num_train_timesteps == 1000 and s.alphas_cumprod.dtype == torch.float64
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)), rtol=1e-13)
    f32 = NoiseSchedule.linear(1000, dtype=torch.float32)
    assert f32.alphas_cumprod.dtype == torch.float32 and torch.equal(f32.alphas_cumprod, s.alphas_cumprod.float())
    for bad in ({"num_train_timesteps": 1}, {"beta_start": 0.0}, {"beta_start": 0.03}, {"beta_end": 1.0}):
        with pytest.raises(ValidationError):
            NoiseSchedule.linear(**bad)


def test_cosine_schedule_key_values():
    ab = NoiseSchedule.cosine().alphas_cumprod
    assert ab.dtype == torch.float32
    assert abs(float(ab[0]) - 0.9999) < 1e-6 and abs(float(ab[600]) - 0.339) < 1e-3 and float(ab[999]) < 1e-8


def test_linspace_and_leading_grids():
    s = NoiseSchedule.linear(200)
    ts = s.set_timesteps(10)
    assert ts[0] == 199 and ts[-1] == 0 and len(ts) == 10 and np.all(np.diff(ts) < 0)
    assert s.set_timesteps(200) == list(range(199, -1, -1)) and s.set_timesteps(1) == [199]
    c = NoiseSchedule.cosine()
    assert c.set_timesteps(10, "leading") == list(range(900, -1, -100))  # diffusers' "leading" spacing
    assert c.set_timesteps(50, "leading", 0.6)[:3] == [588, 576, 564]
    assert c.set_timesteps(7, "leading", 0.6) == [510, 425, 340, 255, 170, 85, 0]
    with pytest.raises(ValidationError, match="1..200"):
        s.set_timesteps(0)
    with pytest.raises(ValidationError, match="spacing"):
        s.set_timesteps(5, "trailing")


def test_sdedit_start_faithful_and_improved():
    c = NoiseSchedule.cosine()
    assert c.sdedit_start(0.6, 50, faithful=True) == 600 and c.sdedit_start(0.6, 50) == 588
    assert c.sdedit_start(1.0, 50) == 980
    with pytest.raises(ValidationError, match="faithful"):
        c.sdedit_start(1.0, 50, faithful=True)
    with pytest.raises(ValidationError, match="strength"):
        c.sdedit_start(0.0)


def test_add_noise_and_predict_x0_invert_each_other():
    s = NoiseSchedule.linear(100)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 2, 8, generator=g), torch.randn(3, 2, 8, generator=g)
    t = torch.tensor([0, 50, 99])
    xt = s.add_noise(x0, eps, t)
    ab = s.alphas_cumprod[t].float().view(3, 1, 1)
    torch.testing.assert_close(xt, ab.sqrt() * x0 + (1 - ab).sqrt() * eps)
    torch.testing.assert_close(s.predict_x0(xt, eps, t), x0, atol=1e-4, rtol=0)
    assert torch.equal(s.add_noise(x0, eps, 50), s.add_noise(x0, eps, torch.full((3,), 50)))  # one t = per-sample t


def test_ddim_step_deterministic_exact_and_stochastic_needs_noise():
    """With the true eps, a deterministic step lands on the forward-noised x0 at the previous step."""
    s = NoiseSchedule.linear(100)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 1, 16, generator=g), torch.randn(2, 1, 16, generator=g)
    out = s.step(eps, 80, s.add_noise(x0, eps, 80), 40)
    torch.testing.assert_close(out.prev_sample, s.add_noise(x0, eps, 40), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.pred_original_sample, x0, atol=1e-5, rtol=0)
    last, x0_hat = s.step(eps, 40, s.add_noise(x0, eps, 40), None, clip=0.5)
    assert torch.equal(last, x0_hat) and float(last.abs().max()) <= 0.5
    with pytest.raises(ValidationError, match="needs noise"):
        s.step(eps, 80, x0, 40, eta=1.0)
    calls = []
    s.step(eps, 80, x0, 40, eta=0.0, noise=lambda: calls.append(1))
    assert not calls  # noise is drawn only when a step uses it
    z = torch.randn(2, 1, 16, generator=g)
    noisy = s.step(eps, 80, x0, 40, eta=1.0, noise=z).prev_sample
    assert not torch.allclose(noisy, s.step(eps, 80, x0, 40, eta=1.0, noise=-z).prev_sample)


def test_clipped_model_output_rederives_eps():
    s = NoiseSchedule.linear(100)
    x, eps = torch.full((1, 1, 4), 3.0), torch.zeros(1, 1, 4)
    plain = s.step(eps, 50, x, 10, clip=1.0).prev_sample
    rederived = s.step(eps, 50, x, 10, clip=1.0, use_clipped_model_output=True).prev_sample
    assert not torch.allclose(plain, rederived)
    ab, ab_prev = s.alphas_cumprod[50], s.alphas_cumprod[10]
    e = (3.0 - ab.sqrt()) / (1 - ab).sqrt()
    torch.testing.assert_close(rederived, torch.full((1, 1, 4), float(ab_prev.sqrt() + (1 - ab_prev).sqrt() * e)))


def test_ancestral_step_is_the_ddpm_posterior_mean_plus_beta_tilde_noise():
    s = NoiseSchedule.linear(50, beta_end=0.2)
    x, eps, z = torch.ones(1, 1, 3), torch.full((1, 1, 3), 0.5), torch.full((1, 1, 3), 2.0)
    b, ab, ab_prev = (float(v) for v in (s.betas[20], s.alphas_cumprod[20], s.alphas_cumprod[19]))
    mean = (1 - b / np.sqrt(1 - ab) * 0.5) / np.sqrt(1 - b)
    sigma = np.sqrt(b * (1 - ab_prev) / (1 - ab))
    torch.testing.assert_close(s.ancestral_step(eps, 20, x, z), torch.full((1, 1, 3), mean + 2 * sigma))
    assert torch.equal(s.ancestral_step(eps, 0, x), s.ancestral_step(eps, 0, x, z))  # t = 0 adds no noise


def test_guide_is_classifier_free_guidance():
    c, u = torch.tensor([2.0]), torch.tensor([1.0])
    assert float(guide(c, u, 1.0)) == 2.0 and float(guide(c, u, 3.0)) == 4.0 and float(guide(c, u, 0.0)) == 1.0
