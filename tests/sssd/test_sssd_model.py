"""The SSSD-ECG network: label embedding, kernel caching, bf16 autocast, the paper's size."""

from __future__ import annotations

import torch

from augframe_sssd.model import SSSDConfig, SSSDECG, count_parameters

CFG = SSSDConfig(res_channels=8, skip_channels=8, num_layers=2, s4_state=4, num_classes=5, label_embed_dim=8,
                 length=64)


def _net() -> SSSDECG:
    torch.manual_seed(0)
    net = SSSDECG(CFG)
    torch.nn.init.normal_(net.out.weight, std=0.1)  # the zero-initialised output would hide everything
    return net.eval()


def test_multi_hot_labels_sum_class_embeddings():
    net = _net()
    y = torch.tensor([[1.0, 0, 1, 0, 1]])
    assert torch.allclose(y @ net.label_table, net.label_table[[0, 2, 4]].sum(0, keepdim=True))
    x, t = torch.randn(1, 8, 64), torch.tensor([3])
    with torch.no_grad():
        a = net(x, t, y)
        b = net(x, t, torch.tensor([[1.0, 0, 0, 0, 0]]))
    assert a.shape == (1, 8, 64) and not torch.allclose(a, b)


def test_frozen_kernels_do_not_change_the_output_and_are_released():
    net = _net()
    x, t, y = torch.randn(2, 8, 64), torch.tensor([0, 5]), torch.eye(5)[:2]
    with torch.no_grad():
        ref = net(x, t, y)
        with net.frozen_kernels(64):
            cached = net(x, t, y)
    assert torch.allclose(cached, ref, atol=1e-6)
    assert all(m._frozen is None for m in net.modules() if hasattr(m, "_frozen"))


def test_bf16_autocast_runs_and_stays_close():
    net = _net()
    x, t, y = torch.randn(2, 8, 64), torch.tensor([1, 7]), torch.eye(5)[:2]
    with torch.no_grad():
        ref = net(x, t, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x, t, y).float()
    assert torch.isfinite(low).all()
    assert float((low - ref).abs().max()) < 0.05 * float(ref.abs().max()) + 1e-3


def test_paper_configuration_parameter_count():
    """36 layers x 256 channels, S4D state 64, 71 PTB-XL statements, 8 leads (stated in docs/sssd.md)."""
    assert count_parameters(SSSDECG(SSSDConfig())) == 52_598_664
