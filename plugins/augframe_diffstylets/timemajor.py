"""Time-major execution of the DiffStyleTS UNet for CPU inference: each convolution is one matmul.

Why: on the CPU, oneDNN runs the UNet's ``Conv1d`` layers on PyTorch's ``[N, C, L]`` layout by
reordering activations to its blocked layout around every convolution (a bf16 forward shows 116
reorder primitives beside 53 compute ones), and the UNet's odd lengths fall on slow convolution
kernels (docs/benchmarks.md, bench.diffstylets_kernels). Here the
activations stay time-major, ``[N, L, C]`` with channels contiguous, through the whole network; a
convolution unfolds its input once into ``[N * L_out, k * C_in]`` (fused with the GroupNorm + SiLU
that precede it) and multiplies it by weights packed once as ``[k * C_in, C_out]``. Those bf16
products run on AMX at a rate that does not depend on L, and GroupNorm runs on the same layout.

Derived from the module, not written beside it: the engine walks the UNet's own
:meth:`~augframe_diffstylets.model.ConditionalUNet.layout` (block order) and runs it through the same
:func:`~augframe_diffstylets.model.run_levels` (topology) and ``condition`` as ``forward``, replacing each
block by its time-major form chosen by the block's exact type (:data:`PACKERS`). A block added to the
layout is followed; a UNet child missing from the layout, a block type without a time-major form, or a
block whose sub-layers are not the ones its form was written for is refused at construction, naming it.
The arithmetic inside each block form is checked against the module by the twin test
(tests/diffstylets/test_diffstylets_timemajor.py): in float32 the outputs agree to ~1e-5, summation order
aside. Inference only: no dropout, no autograd.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from augframe_diffstylets.model import ConditionalUNet, Layout, ResBlock, SelfAttention1D, run_levels


def _expect(module: nn.Module, name: str, **kinds: type | tuple[type, ...]) -> None:
    """Refuse ``module`` unless its children are exactly ``kinds`` (name -> type), by exact type."""
    have = {n: type(c) for n, c in module.named_children()}
    want = {n: k if isinstance(k, tuple) else (k,) for n, k in kinds.items()}
    if have.keys() != want.keys() or any(have[n] not in want[n] for n in want):
        raise ValueError(
            f"the time-major engine cannot run unet.{name}: its layers are "
            f"{ {n: t.__name__ for n, t in have.items()} }, its time-major form was written for "
            f"{ {n: '|'.join(t.__name__ for t in k) for n, k in want.items()} }; update "
            "augframe_diffstylets/timemajor.py with the module, or use precision='float32'"
        )


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

    def __init__(self, conv: nn.Conv1d, dtype: torch.dtype, name: str = "conv") -> None:
        super().__init__()
        if conv.dilation != (1,) or conv.groups != 1 or conv.padding_mode != "zeros" or conv.bias is None:
            raise ValueError(f"unet.{name}: PackedConv packs Conv1d with dilation 1, groups 1, zero padding and a bias")
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

    def __init__(self, conv: nn.ConvTranspose1d, dtype: torch.dtype, name: str = "upsample") -> None:
        super().__init__()
        if (conv.kernel_size[0], conv.stride[0], conv.padding[0], conv.output_padding[0]) != (4, 2, 1, 0):
            raise ValueError(f"unet.{name}: PackedUpsample packs ConvTranspose1d(kernel_size=4, stride=2, padding=1) only")
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

    def __init__(self, block: ResBlock, dtype: torch.dtype, name: str = "block") -> None:
        super().__init__()
        _expect(block, name, norm1=nn.GroupNorm, conv1=nn.Conv1d, cond_proj=nn.Linear, norm2=nn.GroupNorm,
                dropout=nn.Dropout, conv2=nn.Conv1d, skip=(nn.Conv1d, nn.Identity))
        self.block = block
        self.conv1, self.conv2 = PackedConv(block.conv1, dtype, name), PackedConv(block.conv2, dtype, name)
        self.skip = None if isinstance(block.skip, nn.Identity) else PackedConv(block.skip, dtype, name)
        if self.skip is not None:  # conv2's bias rides on the skip conv's: one pass fewer per call
            self.skip.b.copy_(block.skip.bias.detach().float().add(block.conv2.bias.detach().float()).to(dtype))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.block.cond_proj(cond)[:, None, :].chunk(2, dim=2)
        h = torch.addcmul(shift, self.conv1(group_norm_silu(x, self.block.norm1)), 1 + scale)
        skip = x + self.conv2.b if self.skip is None else self.skip(x)
        return self.conv2(group_norm_silu(h, self.block.norm2), add=skip)


class PackedAttention(nn.Module):
    """:class:`SelfAttention1D` in time-major layout (qkv channel = which * C + head * d + c)."""

    def __init__(self, attn: SelfAttention1D, dtype: torch.dtype, name: str = "attention") -> None:
        super().__init__()
        _expect(attn, name, norm=nn.GroupNorm, qkv=nn.Conv1d, proj=nn.Conv1d)
        self.attn = attn
        self.qkv, self.proj = PackedConv(attn.qkv, dtype, name), PackedConv(attn.proj, dtype, name)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        heads = self.attn.heads
        qkv = self.qkv(group_norm_silu(x, self.attn.norm, silu=False))
        q, k, v = qkv.view(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)  # each [B, heads, L, d]
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out, add=x + self.proj.b)


def _kept(norm: nn.GroupNorm, dtype: torch.dtype, name: str) -> nn.GroupNorm:
    """A GroupNorm runs as it is (through :func:`group_norm_silu`)."""
    return norm


#: The time-major form of each block type of a UNet layout, by exact type (a subclass may compute
#: something else, so it is refused rather than guessed).
PACKERS: dict[type, Callable[[nn.Module, torch.dtype, str], nn.Module]] = {
    nn.Conv1d: PackedConv, nn.ConvTranspose1d: PackedUpsample, ResBlock: PackedResBlock,
    SelfAttention1D: PackedAttention, nn.GroupNorm: _kept,
}


def pack_layout(unet: ConditionalUNet, dtype: torch.dtype) -> Layout:
    """``unet.layout()`` with every block in its time-major form; refuses what it cannot follow."""
    layout = unet.layout()
    names = {id(m): n for n, m in unet.named_children()}
    listed = {id(m) for m in (*layout.blocks(), *layout.condition)}
    missing = [n for n, m in unet.named_children() if id(m) not in listed]
    if missing:
        raise ValueError(f"unet.{missing[0]} is not in {type(unet).__name__}.layout(): neither forward nor the "
                         "time-major engine would run it in order; add it to the layout")

    def pack(block: nn.Module) -> nn.Module:
        name = names.get(id(block), type(block).__name__)
        packer = PACKERS.get(type(block))
        if packer is None:
            raise ValueError(f"the time-major engine has no form of unet.{name} ({type(block).__name__}); add one "
                             "to augframe_diffstylets.timemajor.PACKERS, or use precision='float32'")
        return packer(block, dtype, name)

    return layout.map(pack)


class TimeMajorUNet(nn.Module):
    """Inference-only :class:`ConditionalUNet` twin, same call signature, weights packed in ``dtype``.

    Built from a UNet by walking its layout (its weights are copied, so later training of that UNet does
    not reach this one: rebuild it). Returns eps in ``dtype``, ``[B, C, L]``. Batches run ``chunk`` rows
    at a time: on the CPU the cost per row grows with the batch once activations outgrow the caches
    (docs/benchmarks.md, bench.diffstylets_kernels).
    """

    def __init__(self, unet: ConditionalUNet, dtype: torch.dtype = torch.bfloat16, chunk: int = 16) -> None:
        super().__init__()
        if chunk < 1:
            raise ValueError(f"chunk={chunk} must be >= 1")
        self.dtype, self.chunk = dtype, int(chunk)
        self.unet = copy.deepcopy(unet).to(dtype).eval()  # condition MLPs, norms, FiLM projections
        self.layout = pack_layout(self.unet, dtype)
        self.packed = nn.ModuleList(self.layout.blocks())  # registered, so .to() moves the packed weights
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
        dt, layout = self.dtype, self.layout
        cond = self.unet.condition(t, content.to(dt), style.to(dt), class_label)
        h = run_levels(layout, layout.stem(x.to(dt).transpose(1, 2)), cond, lambda up, h, n: up(h, n), channel_dim=2)
        return layout.out_conv(group_norm_silu(h, layout.out_norm)).transpose(1, 2)
