"""Savitzky-Golay smoothing as a torch convolution, on whatever device the signals are on.

The interior is one ``conv1d`` with ``scipy.signal.savgol_coeffs`` weights. The edges follow scipy's
default ``mode='interp'``: the first and last ``window // 2`` samples come from the polynomial of
degree ``order`` least-squares fitted to the first (last) ``window`` samples, evaluated there. That is
a fixed linear map of those samples, so it is two small matmuls. The output therefore equals
``scipy.signal.savgol_filter(x, window, order, axis=-1)`` up to float32 rounding (tested), with no
trip to the host.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from augframe.errors import ValidationError


@functools.lru_cache(maxsize=16)
def _weights(window: int, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy.signal import savgol_coeffs

    kernel = savgol_coeffs(window, order, use="dot")
    pos = np.arange(window, dtype=np.float64)
    vander = np.vander(pos, order + 1, increasing=True)
    hat = vander @ np.linalg.pinv(vander)  # least-squares fit evaluated at every position of the window
    half = window // 2
    return kernel, hat[:half], hat[window - half:]


def savgol(x: torch.Tensor, window: int = 11, order: int = 3) -> torch.Tensor:
    """Smooth ``x [..., L]`` along the last axis (scipy ``savgol_filter`` with ``mode='interp'``)."""
    if window % 2 == 0 or order >= window:
        raise ValidationError(f"Savitzky-Golay window={window} must be odd and larger than order={order}")
    n = x.shape[-1]
    if n < window:
        raise ValidationError(f"Savitzky-Golay window={window} is longer than the signal ({n} samples)")
    kernel, left, right = (torch.as_tensor(a, dtype=x.dtype, device=x.device) for a in _weights(window, order))
    flat = x.reshape(-1, 1, n)
    mid = F.conv1d(flat, kernel.view(1, 1, -1))[:, 0]
    head = flat[:, 0, :window] @ left.T
    tail = flat[:, 0, n - window:] @ right.T
    return torch.cat([head, mid, tail], dim=-1).reshape(x.shape)
