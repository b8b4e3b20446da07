"""AFibResLSTM against the reference parity fixture, plus its contract as a registry classifier."""

from __future__ import annotations

import pytest
import torch

from augframe.errors import CheckpointError, ValidationError
from augframe.protocols import Classifier

from augframe_afib.focal import FocalLoss
from augframe_afib.reslstm import AFibResLSTM, ResLSTMConfig, count_parameters, load_reference_state, zscore


@pytest.fixture(scope="module")
def fixture(reference_dir):
    return torch.load(reference_dir / "afib_reslstm.pt", weights_only=True)


@pytest.fixture(scope="module")
def paper_model(fixture):
    model = AFibResLSTM()
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in fixture["state_dict"].items()}
    model.load_state_dict(state, strict=True)  # identical keys: no renaming
    return model.eval()


@pytest.fixture(scope="module")
def outputs(fixture, paper_model):
    """Every forward the tests compare, run once (paper width is slow on a shared CPU)."""
    torch.set_num_threads(1)
    x, x_z = fixture["inputs"]["x"], fixture["inputs"]["x_z"]
    out = {}
    with torch.no_grad():
        out["x"] = paper_model.features(x)  # raw ECG in: z-scored inside
        out["shifted"] = paper_model(3.0 * x + 0.5)
        paper_model.normalize = False
        try:
            out["x_z"] = paper_model.features(x_z)
            out["raw"] = paper_model(x)
        finally:
            paper_model.normalize = True
    return out


def test_paper_width_parameter_count_and_keys(fixture):
    model = AFibResLSTM()
    assert count_parameters(model) == 8_310_658
    ref = fixture["state_dict"]
    own = model.state_dict()
    assert list(own) == list(ref)
    assert all(tuple(own[k].shape) == tuple(ref[k].shape) for k in own)


def test_eval_logits_attention_and_intermediates_match_reference(fixture, outputs):
    f = outputs["x_z"]  # the stored x_z is already z-scored: fed with normalize=False
    out = fixture["outputs_eval"]
    torch.testing.assert_close(f["logits"], out["logits_on_x_z"], atol=1e-5, rtol=1e-4)
    # softmax weights inherit the scores' relative error: the same rtol as the logits (cross-CPU float32)
    torch.testing.assert_close(f["attention"], out["attention_weights_on_x_z"], atol=1e-6, rtol=1e-4)
    inter = fixture["intermediates_on_x_z"]
    torch.testing.assert_close(f["resnet_pooled"], inter["resnet_pooled"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(f["lstm_pooled"], inter["lstm_pooled"], atol=1e-5, rtol=1e-4)


def test_forward_zscores_inside(fixture, outputs):
    x, out = fixture["inputs"]["x"], fixture["outputs_eval"]
    # float32 mean/std over the window differ between CPU kinds by <= log2(n) eps32 relative: z moves by
    # about that times (|z| + 1); 16 eps32 covers n <= 2^16 samples
    tol = 16 * torch.finfo(torch.float32).eps
    torch.testing.assert_close(zscore(x), fixture["inputs"]["x_z"], atol=tol, rtol=tol)
    logits, shifted, raw = outputs["x"]["logits"], outputs["shifted"], outputs["raw"]
    torch.testing.assert_close(logits, out["logits_on_x_z"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(shifted, logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(raw, out["logits_on_raw_x"], atol=1e-5, rtol=1e-4)


def test_wrapper_batch_statistics_path_matches_reference_without_side_effects(fixture, paper_model):
    before = {k: v.clone() for k, v in paper_model.state_dict().items()}
    with torch.no_grad(), paper_model.batch_statistics():
        logits = paper_model(fixture["inputs"]["x"])
    torch.testing.assert_close(logits, fixture["outputs_wrapper"]["logits_wrapper_on_raw_x"], atol=1e-5, rtol=1e-4)
    after = paper_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the reference wrapper updates BN buffers; we don't
    assert not paper_model.training


def test_focal_loss_matches_reference(fixture):
    loss = FocalLoss(0.65, 2.0)(fixture["outputs_eval"]["logits_on_x_z"], fixture["inputs"]["labels_for_focal"])
    torch.testing.assert_close(loss, fixture["outputs_eval"]["focal_loss_on_x_z_logits"], atol=1e-6, rtol=1e-5)
    logits = torch.tensor([[2.0, -1.0], [0.3, 0.1]])
    target = torch.tensor([0, 1])
    ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    manual = (torch.tensor([0.35, 0.65]) * (1 - torch.exp(-ce)) ** 2 * ce).mean()
    torch.testing.assert_close(FocalLoss()(logits, target), manual)
    torch.testing.assert_close(FocalLoss(alpha=None, gamma=0.0)(logits, target), ce.mean())


def test_registry_builds_it_with_the_reference_checkpoint(registry, reference_dir, paper_model, outputs, fixture):
    model = registry.create("classifier", "afib-reslstm", {"checkpoint": str(reference_dir / "afib_reslstm.pt")})
    assert isinstance(model, Classifier) and model.class_names == ("N", "A")
    assert all(torch.equal(v, paper_model.state_dict()[k]) for k, v in model.state_dict().items())
    emb = outputs["x"]["embedding"]  # what embed() returns: the head's input
    assert emb.shape == (2, 640)
    torch.testing.assert_close(emb[:, :512], fixture["intermediates_on_x_z"]["resnet_pooled"], atol=1e-5, rtol=1e-4)
    small = registry.create("classifier", "afib-reslstm", {"width": 0.0625, "depth": [1, 1, 1, 1]}).eval()
    with torch.no_grad():
        x = fixture["inputs"]["x"][:, :, :500]
        torch.testing.assert_close(small.embed(x), small.features(x)["embedding"])


def test_small_width_and_seeded_init(registry):
    a = registry.create("classifier", "afib-reslstm", {"width": 0.0625, "depth": [1, 1, 1, 1], "seed": 3})
    b = registry.create("classifier", "afib-reslstm", {"width": 0.0625, "depth": [1, 1, 1, 1], "seed": 3})
    assert count_parameters(a) < 100_000
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    with torch.no_grad():
        assert a.eval()(torch.randn(3, 1, 500)).shape == (3, 2)


def test_bad_inputs_raise_named_errors(reference_dir, tmp_path):
    model = AFibResLSTM(ResLSTMConfig.scaled(0.0625, depth=[1, 1, 1, 1]))
    with pytest.raises(ValidationError, match=r"\[N, 1, samples\]"):
        model(torch.randn(2, 2500))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        from augframe_afib.reslstm import load_state_checked

        load_state_checked(model, load_reference_state(reference_dir / "afib_reslstm.pt"), "fixture")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_reference_state(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_reference_state(bad)
    with pytest.raises(ValidationError, match="width"):
        ResLSTMConfig.scaled(0.0)
    with pytest.raises(ValidationError, match="class_names"):
        AFibResLSTM(class_names=("N", "A", "O"))


def test_fused_attention_path_equals_the_weights_path():
    """forward() skips the [N, heads, T, T] weights (fused attention); the maths must not change."""
    model = AFibResLSTM(ResLSTMConfig.scaled(0.0625, depth=[1, 1, 1, 1], attention_dropout=0.0))
    x = torch.randn(3, 1, 1000)
    with torch.no_grad():
        model.eval()
        logits, weights = model.forward_with_attention(x)
        torch.testing.assert_close(model(x), logits, rtol=1e-5, atol=1e-6)
        assert weights.shape[:2] == (3, 4) and model.features(x, need_weights=False)["attention"] is None
        model.train()  # only the LSTM dropouts remain: same seed, same masks on both paths
        torch.manual_seed(5)
        a = model(x)
        torch.manual_seed(5)
        b = model.forward_with_attention(x)[0]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert AFibResLSTM(ResLSTMConfig.scaled(0.0625)).config.attention_p == 0.3  # the reference's default
    with pytest.raises(ValidationError, match="attention_dropout"):
        ResLSTMConfig(attention_dropout=1.0)
