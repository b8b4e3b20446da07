"""Time-major execution of the DiffStyleTS UNet for CPU inference: each convolution is one matmul.

Why: on the CPU, oneDNN runs the UNet's ``Conv1d`` layers on PyTorch's ``[N, C, L]`` layout by
reordering activations to its blocked layout around every convolution (a bf16 forward shows 116
reorder primitives beside 53 compute ones), and the UNet's odd lengths fall on slow convolution
kernels (docs/benchmarks.md, bench.diffstylets_kernels). Here the
activations stay time-major, ``[N, L, C]`` with channels contiguous, through the whole network; a
convolution unfolds its input once into ``[N * L_out, k * C_in]`` (fused with the GroupNorm + SiLU
that precede it) and multiplies it by weights packed once as ``[k * C_in, C_out]``. Those bf16
products run on AMX at a rate that does not depend on L, and GroupNorm runs on the same layout.

Same parameters and the same arithmetic as :meth:`ConditionalUNet.forward` (in float32 the outputs
agree to ~1e-5, summation order aside); inference only: no dropout, no autograd.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from augframe_diffstylets.model import ConditionalUNet, ResBlock, SelfAttention1D


def unfold(y: torch.Tensor, k: int, stride: int, pad: int) -> tuple[torch.Tensor, int]:
    """``y [B, L, C]`` -> (``[B * L_out, k * C]`` rows of the k zero-padded taps, L_out), one copy."""
    b, n, c = y.shape
    n_out = (n + 2 * pad - k) // stride + 1
    if k == 1 and stride == 1 and pad == 0:
        return y.reshape(b * n, c), n
    cols = y.new_empty(b, n_out, k, c)
    for j in range(k):  # output i reads input i * stride + j - pad
        lo = max(0, -((j - pad) // stride))
        hi = min(n_out, (n - 1 + pad - j) // stride + 1)
        if hi > lo:
            start = lo * stride + j - pad
            cols[:, lo:hi, j] = y[:, start:start + (hi - lo - 1) * stride + 1:stride]
        cols[:, :lo, j] = 0
        cols[:, hi:, j] = 0
    return cols.view(b * n_out, k * c), n_out


def group_norm_silu(h: torch.Tensor, norm: nn.GroupNorm, silu: bool = True) -> torch.Tensor:
    """GroupNorm (then SiLU) of time-major ``h [B, L, C]``, returned time-major.

    PyTorch's channels-last GroupNorm kernel reduces each (sample, group) on its own when L < 1024,
    which is slow for narrow groups (C / groups < 16; docs/benchmarks.md, bench.diffstylets_kernels);
    those shapes go through a channels-first copy instead. The choice depends on the shape
    only, so a given input always takes the same arithmetic.
    """
    b, n, c = h.shape
    if n >= 1024 or c // norm.num_groups >= 16:
        y = F.group_norm(h.transpose(1, 2).unsqueeze(2), norm.num_groups, norm.weight, norm.bias, norm.eps)
        y = y.squeeze(2).transpose(1, 2)
    else:
        y = F.group_norm(h.transpose(1, 2).contiguous(), norm.num_groups, norm.weight, norm.bias, norm.eps)
        y = y.transpose(1, 2).contiguous()
    return F.silu(y, inplace=True) if silu else y


class PackedConv(nn.Module):
    """A ``Conv1d``'s weights packed for :func:`unfold` rows: ``[k * C_in, C_out]`` plus the bias."""

    def __init__(self, conv: nn.Conv1d, dtype: torch.dtype) -> None:
        super().__init__()
        w = conv.weight.detach()
        self.k, self.stride, self.pad = w.shape[-1], conv.stride[0], conv.padding[0]
        self.register_buffer("w", w.permute(2, 1, 0).reshape(-1, w.shape[0]).to(dtype).contiguous())
        self.register_buffer("b", conv.bias.detach().to(dtype).clone())

    def forward(self, y: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """Conv of time-major ``y``; ``add [B, L_out, C_out]`` (which must include the bias) is fused in."""
        cols, n_out = unfold(y, self.k, self.stride, self.pad)
        base = self.b if add is None else add.reshape(cols.shape[0], -1)
        return torch.addmm(base, cols, self.w).view(y.shape[0], n_out, -1)


class PackedUpsample(nn.Module):
    """``ConvTranspose1d(k=4, stride=2, padding=1)`` as one matmul over pairs of neighbouring inputs.

    Output 2m takes x[m] W1 + x[m-1] W3, output 2m+1 takes x[m+1] W0 + x[m] W2: with
    q[j] = (x[j-1], x[j]) and R = q [[W3, W2], [W1, W0]], out[2m] = R[m, :C] and out[2m+1] = R[m+1, C:].
    """

    def __init__(self, conv: nn.ConvTranspose1d, dtype: torch.dtype) -> None:
        super().__init__()
        if (conv.kernel_size[0], conv.stride[0], conv.padding[0]) != (4, 2, 1):
            raise ValueError("PackedUpsample packs ConvTranspose1d(kernel_size=4, stride=2, padding=1) only")
        w = conv.weight.detach()  # [C_in, C_out, 4]
        top = torch.cat([w[:, :, 3], w[:, :, 2]], 1)
        bottom = torch.cat([w[:, :, 1], w[:, :, 0]], 1)
        self.register_buffer("w", torch.cat([top, bottom], 0).to(dtype).contiguous())
        self.register_buffer("b", conv.bias.detach().to(dtype).clone())

    def forward(self, h: torch.Tensor, n: int) -> torch.Tensor:
        """Upsample ``h [B, L, C_in]`` to ``[B, n, C_out]`` (2L cropped or zero-padded at the end, as the UNet)."""
        b, m, _ = h.shape
        c_out = self.b.shape[0]
        q, _ = unfold(h, 2, 1, 1)  # rows j = 0..m: (x[j-1], x[j])
        r = (q @ self.w).view(b, m + 1, 2, c_out)
        out = torch.stack([r[:, :m, 0], r[:, 1:, 1]], 2).view(b, 2 * m, c_out)[:, :n] + self.b
        return F.pad(out, (0, 0, 0, n - out.shape[1])) if out.shape[1] < n else out


class PackedResBlock(nn.Module):
    """:class:`ResBlock` in time-major layout: FiLM after conv1, residual fused into conv2's matmul."""

    def __init__(self, block: ResBlock, dtype: torch.dtype) -> None:
        super().__init__()
        self.block = block
        self.conv1, self.conv2 = PackedConv(block.conv1, dtype), PackedConv(block.conv2, dtype)
        self.skip = None if isinstance(block.skip, nn.Identity) else PackedConv(block.skip, dtype)
        if self.skip is not None:  # conv2's bias rides on the skip conv's: one pass fewer per call
            self.skip.b.copy_(block.skip.bias.detach().float().add(block.conv2.bias.detach().float()).to(dtype))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.block.cond_proj(cond)[:, None, :].chunk(2, dim=2)
        h = torch.addcmul(shift, self.conv1(group_norm_silu(x, self.block.norm1)), 1 + scale)
        skip = x + self.conv2.b if self.skip is None else self.skip(x)
        return self.conv2(group_norm_silu(h, self.block.norm2), add=skip)


class PackedAttention(nn.Module):
    """:class:`SelfAttention1D` in time-major layout (qkv channel = which * C + head * d + c)."""

    def __init__(self, attn: SelfAttention1D, dtype: torch.dtype) -> None:
        super().__init__()
        self.attn = attn
        self.qkv, self.proj = PackedConv(attn.qkv, dtype), PackedConv(attn.proj, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        heads = self.attn.heads
        qkv = self.qkv(group_norm_silu(x, self.attn.norm, silu=False))
        q, k, v = qkv.view(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)  # each [B, heads, L, d]
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out, add=x + self.proj.b)


class TimeMajorUNet(nn.Module):
    """Inference-only :class:`ConditionalUNet` twin, same call signature, weights packed in ``dtype``.

    Built from a UNet (its weights are copied, so later training of that UNet does not reach this
    one: rebuild it). Returns eps in ``dtype``, ``[B, C, L]``. Batches run ``chunk`` rows at a time:
    on the CPU the cost per row grows with the batch once activations outgrow the caches
    (docs/benchmarks.md, bench.diffstylets_kernels).
    """

    def __init__(self, unet: ConditionalUNet, dtype: torch.dtype = torch.bfloat16, chunk: int = 16) -> None:
        super().__init__()
        if chunk < 1:
            raise ValueError(f"chunk={chunk} must be >= 1")
        self.dtype, self.chunk = dtype, int(chunk)
        self.unet = copy.deepcopy(unet).to(dtype).eval()  # condition MLPs, norms, FiLM projections
        u = self.unet
        self.input_conv = PackedConv(u.input_conv, dtype)
        self.down = nn.ModuleList(PackedResBlock(getattr(u, f"down{i}"), dtype) for i in range(1, 5))
        self.downsample = nn.ModuleList(PackedConv(getattr(u, f"downsample{i}"), dtype) for i in range(1, 5))
        self.mid1, self.mid2 = PackedResBlock(u.mid1, dtype), PackedResBlock(u.mid2, dtype)
        self.mid_attn = PackedAttention(u.mid_attn, dtype)
        self.up = nn.ModuleList(PackedResBlock(getattr(u, f"up{i}"), dtype) for i in range(4, 0, -1))
        self.upsample = nn.ModuleList(PackedUpsample(getattr(u, f"upsample{i}"), dtype) for i in range(4, 0, -1))
        self.out_conv = PackedConv(u.out_conv, dtype)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor, t: torch.Tensor, content: torch.Tensor, style: torch.Tensor,
                class_label: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[0] <= self.chunk:
            return self._forward(x, t, content, style, class_label)
        parts = [self._forward(x[i:i + self.chunk], t[i:i + self.chunk], content[i:i + self.chunk],
                               style[i:i + self.chunk], None if class_label is None else class_label[i:i + self.chunk])
                 for i in range(0, x.shape[0], self.chunk)]
        return torch.cat(parts)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, content: torch.Tensor, style: torch.Tensor,
                 class_label: torch.Tensor | None) -> torch.Tensor:
        dt = self.dtype
        cond = self.unet.condition(t, content.to(dt), style.to(dt), class_label)
        h = self.input_conv(x.to(dt).transpose(1, 2))
        skips = []
        for block, down in zip(self.down, self.downsample):
            h = block(h, cond)
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, cond)), cond)
        for block, up, skip in zip(self.up, self.upsample, reversed(skips)):
            h = block(torch.cat([up(h, skip.shape[1]), skip], 2), cond)
        return self.out_conv(group_norm_silu(h, self.unet.out_norm)).transpose(1, 2)
