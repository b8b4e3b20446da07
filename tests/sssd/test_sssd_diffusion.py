"""SSSD-ECG's samplers and loss, checked with the exact denoiser of a known distribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augframe.diffusion import NoiseSchedule
from augframe.seeding import derive_seeds
from augframe_sssd.diffusion import sample_ancestral, sample_ddim, training_loss
from augframe_sssd.generator import PAPER, _Spec


def test_paper_schedule():
    s = _Spec(**PAPER).schedule()
    betas = s.betas
    assert s.num_train_timesteps == 200 and float(betas[0]) == pytest.approx(1e-4) and float(betas[-1]) == pytest.approx(0.02)
    ab = s.alphas_cumprod
    assert ab.dtype == torch.float64 and float(ab[-1]) == pytest.approx(float(torch.prod(1 - betas)), rel=1e-12)
    # the paper's short schedule keeps exp(-sum beta) ~ 13 % of the signal variance at T
    assert float(ab[-1]) == pytest.approx(np.exp(-float(betas.sum())), rel=0.05)


def _gaussian_oracle(mean: torch.Tensor, std: float, schedule: NoiseSchedule):
    """Exact eps-predictor for data ~ N(mean, std^2 I): E[eps | x_t]."""
    ab = schedule.alphas_cumprod

    def model(x, t, labels):
        a = ab[t].float().view(-1, 1, 1)
        var = a * std**2 + (1 - a)
        return (1 - a).sqrt() * (x - a.sqrt() * mean) / var

    return model


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_samplers_recover_a_known_gaussian(sampler):
    # alpha-bar(T) ~ 0.006, so x_T is close to N(0, I); 200 steps keep the discretisation error small
    schedule = NoiseSchedule.linear(200, beta_end=0.05)
    mean = torch.sin(torch.linspace(0, 6, 32)).view(1, 1, 32).expand(1, 2, 32)
    std = 0.3
    model = _gaussian_oracle(mean, std, schedule)
    seeds = derive_seeds(7, 256)
    labels = torch.zeros(256, 1)
    if sampler == "ancestral":
        x = sample_ancestral(model, labels, seeds, (2, 32), schedule)
    else:
        x = sample_ddim(model, labels, seeds, (2, 32), schedule, steps=100, eta=1.0)
    assert float((x.mean(0) - mean[0]).abs().mean()) < 0.04
    assert float(x.std(0).mean()) == pytest.approx(std, rel=0.1)


def test_deterministic_ddim_maps_noise_to_the_mean_direction():
    schedule = NoiseSchedule.linear(50, beta_end=0.2)
    mean = torch.ones(1, 1, 16)
    model = _gaussian_oracle(mean, 0.0, schedule)
    x = sample_ddim(model, torch.zeros(4, 1), derive_seeds(0, 4), (1, 16), schedule, steps=10, eta=0.0)
    assert torch.allclose(x, mean.expand(4, 1, 16), atol=1e-3)


def test_samplers_are_batch_size_invariant():
    schedule = NoiseSchedule.linear(10)
    torch.manual_seed(0)
    net = torch.nn.Conv1d(2, 2, 3, padding=1)
    model = lambda x, t, y: net(x) * (1 + t.float().view(-1, 1, 1) / 10) + y[:, :1, None]  # noqa: E731
    seeds = derive_seeds(3, 6)
    labels = torch.arange(6, dtype=torch.float32).view(6, 1)
    for fn in (lambda s, y: sample_ancestral(model, y, s, (2, 32), schedule),
               lambda s, y: sample_ddim(model, y, s, (2, 32), schedule, steps=4, eta=0.5)):
        full = fn(seeds, labels)
        part = fn(seeds[[4, 1]], labels[[4, 1]])
        assert torch.allclose(full[[4, 1]], part, atol=1e-6)


def test_training_loss_is_zero_for_the_oracle_and_seeded():
    schedule = NoiseSchedule.linear(50)
    x0 = torch.zeros(8, 2, 16)
    oracle = _gaussian_oracle(torch.zeros(1, 2, 16), 0.0, schedule)
    assert float(training_loss(oracle, x0, torch.zeros(8, 1), schedule, derive_seeds(0, 8))) < 1e-10
    zero = lambda x, t, y: torch.zeros_like(x)  # noqa: E731
    a = training_loss(zero, x0, torch.zeros(8, 1), schedule, derive_seeds(0, 8))
    b = training_loss(zero, x0, torch.zeros(8, 1), schedule, derive_seeds(0, 8))
    assert float(a) == float(b) and float(a) == pytest.approx(1.0, abs=0.2)
