"""S4D layer: the blocked Vandermonde kernel, the bidirectional FFT convolution, causality."""

from __future__ import annotations

import torch

from augframe_sssd.s4d import S4D, S4DKernel


def _direct_kernel(k: S4DKernel, length: int) -> torch.Tensor:
    dt = k.log_dt.exp()[:, None]
    a = torch.complex(-k.log_a_real.exp(), k.a_imag)
    c = torch.view_as_complex(k.c) * (torch.exp(a * dt) - 1) / a
    steps = torch.arange(length, dtype=torch.float32)
    return 2 * torch.einsum("chn,hnl->chl", c, torch.exp((a * dt)[:, :, None] * steps)).real


def test_blocked_kernel_matches_direct_vandermonde():
    torch.manual_seed(0)
    k = S4DKernel(6, d_state=8, channels=2)
    with torch.no_grad():
        for length in (1, 5, 64, 1000, 1003):
            assert torch.allclose(k(length), _direct_kernel(k, length), atol=1e-5, rtol=1e-4)


def test_kernel_is_a_decaying_zoh_ssm_impulse_response():
    """With one mode, K[l] = 2 Re(C (e^{dtA}-1)/A e^{dtA l}): check against a recurrence."""
    torch.manual_seed(1)
    k = S4DKernel(1, d_state=2, channels=1)
    with torch.no_grad():
        kern = k(50)[0, 0]
        dta = torch.complex(-k.log_a_real.exp(), k.a_imag) * k.log_dt.exp()[:, None]
        a = torch.complex(-k.log_a_real.exp(), k.a_imag)
        state = (torch.exp(dta) - 1) / a  # ZOH: B-bar applied to a unit impulse
        c = torch.view_as_complex(k.c)[0]
        for l in range(50):
            assert abs(float(kern[l]) - float(2 * (c * state).sum().real)) < 1e-5
            state = state * torch.exp(dta)


def test_bidirectional_conv_equals_time_domain_sum():
    torch.manual_seed(2)
    layer = S4D(3, d_state=4, bidirectional=True)
    x = torch.randn(2, 3, 40)
    with torch.no_grad():
        k = layer.kernel(40)
        y_ref = torch.zeros_like(x)
        for t in range(40):
            for s in range(40):
                if s <= t:
                    y_ref[..., t] += k[0, :, t - s] * x[..., s]
                else:
                    y_ref[..., t] += k[1, :, s - t - 1] * x[..., s]
        y_ref = layer.output(layer.activation(y_ref + x * layer.d[:, None]))
        assert torch.allclose(layer(x), y_ref, atol=1e-4)


def test_unidirectional_is_causal_and_bidirectional_sees_the_future():
    torch.manual_seed(3)
    x = torch.randn(1, 4, 60)
    x2 = x.clone()
    x2[..., 40:] += 1.0
    with torch.no_grad():
        uni, bi = S4D(4, 8, bidirectional=False), S4D(4, 8, bidirectional=True)
        # the convolution is an FFT product: round-off of ~eps32 log2(n) times the signal's norm reaches
        # every output; the future's +1.0 would move the past by O(0.1) if it leaked
        assert torch.allclose(uni(x)[..., :40], uni(x2)[..., :40], atol=1e-5)
        assert not torch.allclose(bi(x)[..., :40], bi(x2)[..., :40], atol=1e-4)


def test_frozen_kernel_gives_the_same_output():
    torch.manual_seed(4)
    layer = S4D(4, 8)
    x = torch.randn(2, 4, 30)
    with torch.no_grad():
        y = layer(x)
        layer.freeze_kernel(30)
        assert torch.equal(layer(x), y)
        layer.freeze_kernel(None)
