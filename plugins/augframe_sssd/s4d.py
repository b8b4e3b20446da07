"""Bidirectional diagonal structured state-space layer (S4D), convolved by FFT.

SSSD-ECG places S4 blocks (Gu et al., ICLR 2022) in every residual layer. We use the diagonal
variant S4D (Gu et al., NeurIPS 2022): the state matrix is diagonal complex, ``A = -exp(log_a_real)
+ i * a_imag`` with the S4D-Lin initialisation (real part -1/2, imaginary part pi * n), so the
convolution kernel is a Vandermonde product that plain torch evaluates in O(H N L) without the
Cauchy kernel the NPLR parameterisation of the paper's S4 needs (SSSD-ECG warns that its fallback
without the custom CUDA kernel is slow). Discretisation is zero-order hold with a learnt step size
per channel. ``d_state`` counts the state size N as in S4; conjugate symmetry keeps N/2 complex
modes and doubles the real part of the sum.

Bidirectional mode learns two kernels per channel: one causal (past -> present) and one
anti-causal (future -> present, strictly future so the current sample is counted once through
``D``). Both are applied in one FFT convolution of length 2L.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class S4DKernel(nn.Module):
    """Diagonal SSM convolution kernel: ``K[c, h, l] = 2 Re(sum_n C'[c,h,n] exp(dt A[h,n] l))``."""

    def __init__(self, d_model: int, d_state: int = 64, channels: int = 1,
                 dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        super().__init__()
        if d_state % 2:
            raise ValueError(f"S4D d_state={d_state} must be even (conjugate pairs)")
        n = d_state // 2
        log_dt = torch.rand(d_model) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.log_a_real = nn.Parameter(torch.full((d_model, n), math.log(0.5)))
        self.a_imag = nn.Parameter(math.pi * torch.arange(n, dtype=torch.float32).repeat(d_model, 1))
        c = torch.randn(channels, d_model, n, dtype=torch.cfloat) * math.sqrt(0.5)
        self.c = nn.Parameter(torch.view_as_real(c))

    def forward(self, length: int) -> torch.Tensor:
        """Kernels ``[channels, d_model, length]`` in float32 (computed in complex64)."""
        dt = self.log_dt.float().exp()[:, None]  # [H, 1]
        a = torch.complex(-self.log_a_real.float().exp(), self.a_imag.float())  # [H, N]
        dta = a * dt
        # zero-order hold with B = 1: C' = C (exp(dt A) - 1) / A
        c = torch.view_as_complex(self.c.float()) * (torch.exp(dta) - 1.0) / a
        # Vandermonde z^l with l = j * B + b as z^(jB) * z^b: O(sqrt L) exponentials per mode and
        # one batched complex matmul, instead of H N L complex exponentials
        block = max(1, math.isqrt(length))
        blocks = -(-length // block)
        steps = torch.arange(max(block, blocks), device=a.device, dtype=torch.float32)
        z_in = torch.exp(dta[:, :, None] * steps[:block])  # [H, N, B]
        z_out = torch.exp(dta[:, :, None] * (block * steps[:blocks]))  # [H, N, J]
        k = torch.einsum("chnj,hnb->chjb", c[:, :, :, None] * z_out, z_in)
        return 2.0 * k.real.reshape(c.shape[0], c.shape[1], blocks * block)[..., :length]


class S4D(nn.Module):
    """One S4D sequence map on ``[B, H, L]``: SSM convolution + D skip, GELU, output projection."""

    def __init__(self, d_model: int, d_state: int = 64, bidirectional: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.bidirectional = bidirectional
        self.kernel = S4DKernel(d_model, d_state, channels=2 if bidirectional else 1)
        self.d = nn.Parameter(torch.randn(d_model))
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.output = nn.Conv1d(d_model, d_model, 1)
        self._frozen: tuple[int, torch.Tensor] | None = None

    def kernel_spectrum(self, length: int) -> torch.Tensor:
        """rFFT (length 2L) of the full convolution kernel ``[H, L + 1]``."""
        k = self.kernel(length)
        if self.bidirectional:
            # causal half at lags 0..L-1, anti-causal half wrapped to lags -L..-1 of a 2L circle
            k = nn.functional.pad(k[0], (0, length)) + nn.functional.pad(k[1].flip(-1), (length, 0))
        else:
            k = k[0]
        return torch.fft.rfft(k, n=2 * length)

    def freeze_kernel(self, length: int | None) -> None:
        """Cache the kernel spectrum for ``length`` (sampling: weights fixed); None drops the cache."""
        self._frozen = None
        if length is not None:
            with torch.no_grad():
                self._frozen = (length, self.kernel_spectrum(length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        n_fft = 2 * length
        with torch.autocast(device_type=x.device.type, enabled=False):
            if self._frozen is not None and self._frozen[0] == length:
                kf = self._frozen[1]
            else:
                kf = self.kernel_spectrum(length)
            xf = torch.fft.rfft(x.float(), n=n_fft)
            y = torch.fft.irfft(xf * kf, n=n_fft)[..., :length]
        y = y + x.float() * self.d[:, None]
        y = self.dropout(self.activation(y)).to(x.dtype)
        return self.output(y)


class S4Block(nn.Module):
    """S4D with residual connection and layer norm over channels, as SSSD wraps each S4 layer."""

    def __init__(self, d_model: int, d_state: int = 64, bidirectional: bool = True,
                 dropout: float = 0.0, layer_norm: bool = True) -> None:
        super().__init__()
        self.s4 = S4D(d_model, d_state, bidirectional, dropout)
        self.norm = nn.LayerNorm(d_model) if layer_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dropout(self.s4(x)) + x
        return self.norm(y.transpose(1, 2)).transpose(1, 2)
