"""The three networks: exact parameter counts, reference key names, and parity with the reference outputs."""

from __future__ import annotations

import pytest
import torch

from augframe.errors import ValidationError
from augframe_diffstylets.config import ModelConfig
from augframe_diffstylets.model import (
    ConditionalUNet, ContentEncoder, DiffStyleTS, StyleEncoder, count_parameters, kl_divergence,
    timestep_embedding,
)

from diffstylets_helpers import TINY, float_state

TOL = 1e-4


def test_paper_parameter_counts():
    m = DiffStyleTS()
    counts = [count_parameters(m.content_encoder), count_parameters(m.style_encoder), count_parameters(m.unet)]
    assert counts == [4_273_408, 566_786, 14_271_489]
    assert sum(counts) == 19_111_683
    # the reference's width-32 UNet ties cond/time dims to the width
    assert count_parameters(ConditionalUNet(ModelConfig(model_channels=32))) == 3_600_897


@pytest.mark.parametrize("stem,cls", [("content_encoder", ContentEncoder), ("style_encoder", StyleEncoder),
                                      ("unet_mc64", ConditionalUNet)])
def test_state_dict_keys_and_shapes_match_reference(ref, stem, cls):
    ours = cls().state_dict()
    theirs = ref(stem)["state_dict"]
    assert list(ours) == list(theirs)
    assert all(tuple(ours[k].shape) == tuple(theirs[k].shape) for k in ours)


def test_content_encoder_parity(ref):
    d = ref("content_encoder")
    m = ContentEncoder()
    m.load_state_dict(float_state(d))
    m.eval()
    x = d["inputs"]["x"]
    with torch.no_grad():
        z, mu, logvar = m(x)
    out = d["outputs_eval"]
    assert (mu - out["mu"]).abs().max() <= TOL and (logvar - out["logvar"]).abs().max() <= TOL
    assert torch.equal(z, mu)
    # train mode: batch statistics, reparameterisation with the recorded eps, KL, BN buffer update
    m.train()
    tr = d["outputs_train"]
    with torch.no_grad():
        z, mu, logvar = m(x, eps=tr["eps"])
    assert (z - tr["z"]).abs().max() <= TOL
    assert abs(float(kl_divergence(mu, logvar)) - float(tr["kl_train_formula"])) <= TOL
    for key, value in tr["bn_buffers_after_one_train_forward"].items():
        assert (m.state_dict()[key].float() - value.float()).abs().max() <= TOL, key


def test_style_encoder_parity(ref):
    d = ref("style_encoder")
    m = StyleEncoder()
    m.load_state_dict(float_state(d))
    with torch.no_grad():
        style, logits = m.eval()(d["inputs"]["x"])
    assert (style - d["outputs_eval"]["style"]).abs().max() <= TOL
    assert (logits - d["outputs_eval"]["class_logits"]).abs().max() <= TOL


def test_unet_parity_all_label_settings(ref):
    d = ref("unet_mc64")
    m = ConditionalUNet()
    m.load_state_dict(float_state(d))
    m.eval()
    i = d["inputs"]
    with torch.inference_mode():
        for name, label in [("a", i["class_label_a"]), ("b", i["class_label_b"]), ("None", None)]:
            eps = m(i["x_t"], i["t"], i["content"], i["style"], label)
            assert (eps - d["outputs_eval"][f"eps_class_label_{name}"]).abs().max() <= TOL, name
        inter = d["intermediates_class_label_a"]
        cond = m.condition(i["t"], i["content"], i["style"], i["class_label_a"])
        assert (cond - inter["cond"]).abs().max() <= TOL
        temb = m.time_embed(timestep_embedding(i["t"], 64))
        assert (temb - inter["time_embed_out"]).abs().max() <= TOL
        assert (m.mid_attn(inter["mid_attn_in"]) - inter["mid_attn_out"]).abs().max() <= TOL


def test_timestep_embedding_is_cos_then_sin(ref):
    e = ref("diffusion_schedule")["timestep_embedding"]
    # float32 exp, product and sin/cos each err by <= 1 ulp and differ between CPU kinds (SIMD kernels):
    # the argument t * freq is off by <= 3 ulp(arg) <= 3 eps t, sin/cos add <= 2 eps (measured 3e-5 at
    # t = 999 on an AMD EPYC). A swapped order or another frequency law is off by O(1).
    eps = torch.finfo(torch.float32).eps
    bound = 4 * eps * (e["t"].to(torch.float32)[:, None] + 1)
    assert ((timestep_embedding(e["t"], 64) - e["emb"]).abs() <= bound).all()
    emb = timestep_embedding(torch.tensor([0]), 8)
    assert torch.equal(emb[0, :4], torch.ones(4)) and torch.equal(emb[0, 4:], torch.zeros(4))


def test_tiny_widths_and_odd_lengths_run():
    cfg = ModelConfig(signal_length=300, **TINY)
    m = DiffStyleTS(cfg).eval()
    x = torch.randn(3, 1, 300)
    content, style = m.encode(x)
    eps = m.unet(x, torch.tensor([0, 500, 999]), content, style, torch.tensor([0, 1, cfg.null_class]))
    assert content.shape == (3, 16) and style.shape == (3, 8) and eps.shape == (3, 1, 300)
    assert count_parameters(m) < 300_000  # vs 19.1 M at paper width


def test_bad_widths_are_named():
    with pytest.raises(ValidationError, match="norm_groups"):
        ModelConfig(model_channels=24)
    with pytest.raises(ValidationError, match="attention_heads"):
        ModelConfig(model_channels=32, attention_heads=7)
