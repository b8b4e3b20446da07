"""The time-major CPU engine computes what ConditionalUNet computes, from the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from augframe_diffstylets.config import ModelConfig
from augframe_diffstylets.model import ConditionalUNet, ResBlock
from augframe_diffstylets.timemajor import PackedConv, PackedUpsample, TimeMajorUNet, group_norm_silu, unfold

from diffstylets_helpers import TINY, float_state


def _random_unet(cfg: ModelConfig, seed: int = 0, cls: type = ConditionalUNet) -> ConditionalUNet:
    torch.manual_seed(seed)
    unet = cls(cfg).eval()
    nn.init.normal_(unet.out_conv.weight, std=0.1)  # zero-initialised: would hide every error upstream
    nn.init.normal_(unet.out_conv.bias, std=0.1)
    return unet


def _perturbed_unet(cfg: ModelConfig, seed: int = 0, cls: type = ConditionalUNet) -> ConditionalUNet:
    """Every weight moved off its init (GroupNorm 1/0, zero out_conv): a twin that ignores or swaps any
    parameter of :class:`ConditionalUNet` then computes something else, and the match test fails."""
    unet = _random_unet(cfg, seed, cls)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_((0.1 * p.std() if p.numel() > 1 and p.std() > 0 else 0.05) * torch.randn(p.shape, generator=g))
    return unet


def _inputs(cfg: ModelConfig, b: int, n: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    return (torch.randn(b, cfg.in_channels, n, generator=g), torch.randint(0, 1000, (b,), generator=g),
            torch.randn(b, cfg.content_dim, generator=g), torch.randn(b, cfg.style_dim, generator=g))


@pytest.mark.parametrize("leads,n", [(1, 250), (3, 301), (12, 97)])
def test_float32_engine_matches_the_module(leads, n):
    cfg = ModelConfig(signal_length=n, in_channels=leads, **TINY)
    unet = _perturbed_unet(cfg)
    x, t, content, style = _inputs(cfg, 3, n)
    engine = TimeMajorUNet(unet, torch.float32)
    with torch.inference_mode():
        for labels in (torch.tensor([0, 1, cfg.null_class]), None):
            ref = unet(x, t, content, style, labels)
            out = engine(x, t, content, style, labels)
            assert out.shape == ref.shape == (3, leads, n)
            assert (out - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max().item())


def test_reference_weights_reproduce_the_reference_outputs(ref):
    d = ref("unet_mc64")
    unet = ConditionalUNet()
    unet.load_state_dict(float_state(d))
    engine = TimeMajorUNet(unet.eval(), torch.float32)
    i = d["inputs"]
    with torch.inference_mode():
        for name, label in [("a", i["class_label_a"]), ("None", None)]:
            eps = engine(i["x_t"], i["t"], i["content"], i["style"], label)
            assert (eps - d["outputs_eval"][f"eps_class_label_{name}"]).abs().max() <= 1e-4, name


def test_bf16_engine_stays_close_to_float32():
    cfg = ModelConfig(signal_length=500, **TINY)
    unet = _random_unet(cfg)
    x, t, content, style = _inputs(cfg, 4, 500)
    labels = torch.tensor([0, 1, 0, cfg.null_class])
    with torch.inference_mode():
        ref = unet(x, t, content, style, labels)
        out = TimeMajorUNet(unet, torch.bfloat16)(x, t, content, style, labels)
    assert out.dtype == torch.bfloat16
    out, ref = out.float().numpy().ravel(), ref.numpy().ravel()
    assert np.corrcoef(out, ref)[0, 1] > 0.999
    assert np.abs(out - ref).max() < 0.03 * (ref.max() - ref.min())


def test_engine_copies_the_weights():
    """Training the source UNet afterwards does not leak into a built engine (rebuild it instead)."""
    cfg = ModelConfig(signal_length=64, **TINY)
    unet = _random_unet(cfg)
    x, t, content, style = _inputs(cfg, 2, 64)
    engine = TimeMajorUNet(unet, torch.float32)
    with torch.inference_mode():
        before = engine(x, t, content, style, None)
        for p in unet.parameters():
            p.add_(1.0)
        assert torch.equal(engine(x, t, content, style, None), before)


@pytest.mark.parametrize("k,stride,pad,n", [(3, 1, 1, 10), (3, 2, 1, 9), (3, 2, 1, 10), (1, 1, 0, 7), (5, 1, 2, 6),
                                            (7, 2, 3, 11)])
def test_packed_conv_is_conv1d(k, stride, pad, n):
    torch.manual_seed(k + n)
    conv = nn.Conv1d(4, 6, k, stride=stride, padding=pad)
    x = torch.randn(2, 4, n)
    out = PackedConv(conv, torch.float32)(x.transpose(1, 2).contiguous())
    assert torch.allclose(out.transpose(1, 2), conv(x), atol=1e-5)


def test_unfold_rows_hold_the_zero_padded_taps():
    y = torch.arange(1.0, 6.0).view(1, 5, 1)
    cols, n_out = unfold(y, 3, 1, 1)
    assert n_out == 5
    assert cols.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 0]]


@pytest.mark.parametrize("n,target", [(5, 10), (5, 9), (5, 11)])
def test_packed_upsample_is_conv_transpose_cropped_or_padded(n, target):
    torch.manual_seed(n + target)
    conv = nn.ConvTranspose1d(4, 3, 4, stride=2, padding=1)
    x = torch.randn(2, 4, n)
    ref = conv(x)
    ref = ref[..., :target] if ref.shape[-1] >= target else F.pad(ref, (0, target - ref.shape[-1]))
    out = PackedUpsample(conv, torch.float32)(x.transpose(1, 2).contiguous(), target)
    assert torch.allclose(out.transpose(1, 2), ref, atol=1e-5)


def test_packed_upsample_rejects_other_geometries():
    with pytest.raises(ValueError, match="kernel_size=4"):
        PackedUpsample(nn.ConvTranspose1d(4, 3, 3, stride=2, padding=1), torch.float32)


@pytest.mark.parametrize("n,c", [(600, 32), (600, 256), (1100, 32)])
def test_group_norm_silu_takes_either_kernel_and_matches(n, c):
    """Both layouts (chosen by shape) give GroupNorm + SiLU of the time-major input."""
    torch.manual_seed(n + c)
    norm = nn.GroupNorm(8, c)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    h = torch.randn(2, n, c) * 3 + 1
    ref = F.silu(norm(h.transpose(1, 2))).transpose(1, 2)
    with torch.inference_mode():
        out = group_norm_silu(h, norm)
    assert out.shape == (2, n, c) and out.is_contiguous()
    assert torch.allclose(out, ref, atol=1e-5)


def test_chunked_batches_give_the_rows_of_one_batch():
    cfg = ModelConfig(signal_length=128, **TINY)
    unet = _random_unet(cfg)
    x, t, content, style = _inputs(cfg, 5, 128)
    labels = torch.tensor([0, 1, 2, 1, 0])
    with torch.inference_mode():
        whole = TimeMajorUNet(unet, torch.float32, chunk=16)(x, t, content, style, labels)
        chunked = TimeMajorUNet(unet, torch.float32, chunk=2)(x, t, content, style, labels)
        alone = TimeMajorUNet(unet, torch.float32, chunk=2)(x[3:4], t[3:4], content[3:4], style[3:4], labels[3:4])
    assert torch.allclose(whole, chunked, atol=1e-6) and torch.allclose(whole[3:4], alone, atol=1e-6)
    with pytest.raises(ValueError, match="chunk"):
        TimeMajorUNet(unet, torch.float32, chunk=0)


class _Deeper(ConditionalUNet):
    """A UNet changed the way a developer would: one more middle block, and the middle run in reverse."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        c4 = 8 * cfg.model_channels
        self.mid3 = ResBlock(c4, c4, cfg.cond_dim, cfg.norm_groups, cfg.dropout)

    def layout(self):
        base = super().layout()
        return base._replace(middle=(self.mid3, *reversed(base.middle)))


class _GeluResBlock(ResBlock):
    """Same layers as ResBlock, another forward: the engine has no form of it."""

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return super().forward(F.gelu(x), cond)


def test_engine_follows_blocks_added_and_reordered_in_the_layout():
    cfg = ModelConfig(signal_length=97, **TINY)
    unet = _perturbed_unet(cfg, cls=_Deeper)
    x, t, content, style = _inputs(cfg, 2, 97)
    labels = torch.tensor([0, cfg.null_class])
    with torch.inference_mode():
        ref = unet(x, t, content, style, labels)
        out = TimeMajorUNet(unet, torch.float32)(x, t, content, style, labels)
        plain = ConditionalUNet(cfg).eval()
        plain.load_state_dict({k: v for k, v in unet.state_dict().items() if not k.startswith("mid3.")})
        assert (plain(x, t, content, style, labels) - ref).abs().max() > 1e-3  # the change changes the output
    assert (out - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max().item())


def test_engine_refuses_what_it_cannot_follow():
    cfg = ModelConfig(signal_length=64, **TINY)
    unet = _random_unet(cfg)
    unet.extra = nn.Conv1d(8, 8, 1)  # a child forward might use, missing from the layout
    with pytest.raises(ValueError, match=r"unet\.extra is not in ConditionalUNet\.layout"):
        TimeMajorUNet(unet, torch.float32)
    unet = _random_unet(cfg)
    unet.down2.norm1 = nn.BatchNorm1d(8)  # a different norm inside a block
    with pytest.raises(ValueError, match=r"cannot run unet\.down2: .*'norm1': 'BatchNorm1d'"):
        TimeMajorUNet(unet, torch.float32)
    unet = _random_unet(cfg)
    unet.mid1 = _GeluResBlock(64, 64, cfg.cond_dim, cfg.norm_groups, 0.0)  # a block type with another forward
    with pytest.raises(ValueError, match=r"no form of unet\.mid1 \(_GeluResBlock\)"):
        TimeMajorUNet(unet, torch.float32)
