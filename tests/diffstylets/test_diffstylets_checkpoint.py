"""Checkpoints: the reference layout loads with no renaming; ours round-trips; mismatches are named."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from augframe.errors import CheckpointError
from augframe.protocols import GenerationRequest
from augframe.signals import ECGBatch
from augframe_diffstylets import checkpoints
from augframe_diffstylets.config import ModelConfig
from augframe_diffstylets.pipeline import DiffStyleTSGenerator
from augframe_diffstylets.model import DiffStyleTS
from augframe_diffstylets.normalise import Normaliser

from diffstylets_helpers import TINY


@pytest.fixture(scope="module")
def reference_checkpoint(ref, tmp_path_factory):
    """A final_model.pth in the reference's layout, assembled from the parity fixtures (bf16 as stored)."""
    path = tmp_path_factory.mktemp("ref") / "final_model.pth"
    torch.save({
        "content_encoder": ref("content_encoder")["state_dict"],
        "style_encoder": ref("style_encoder")["state_dict"],
        "unet": ref("unet_mc64")["state_dict"],
        "config": {"content_dim": 256, "style_dim": 128, "model_channels": 64, "num_classes": 2},
        "history": {"stage1": {"loss": [1.0]}}, "training_time_seconds": 1.0, "total_epochs": 100,
    }, path)
    return path


def test_reference_layout_loads_into_faithful_mode(ref, reference_checkpoint):
    gen = DiffStyleTSGenerator(mode="faithful", checkpoint=str(reference_checkpoint), device="cpu")
    assert gen.checkpoint_layout == "reference" and len(gen.checkpoint_sha256) == 64
    assert gen.class_names == ("N", "A")
    x = ref("content_encoder")["inputs"]["x"]
    with torch.inference_mode():
        content, style = gen.model.encode(x)
        eps = gen.model.unet(*(ref("unet_mc64")["inputs"][k] for k in ("x_t", "t", "content", "style",
                                                                         "class_label_a")))
    assert (content - ref("content_encoder")["outputs_eval"]["mu"]).abs().max() <= 1e-4
    assert (style - ref("style_encoder")["outputs_eval"]["style"]).abs().max() <= 1e-4
    assert (eps - ref("unet_mc64")["outputs_eval"]["eps_class_label_a"]).abs().max() <= 1e-4
    assert gen.info.checkpoint_sha256 == gen.checkpoint_sha256


def test_reference_layout_with_wrong_config_names_keys(reference_checkpoint):
    with pytest.raises(CheckpointError) as err:
        DiffStyleTSGenerator(mode="faithful", checkpoint=str(reference_checkpoint), model={"model_channels": 32})
    msg = str(err.value)
    assert "unet" in msg and "input_conv.weight" in msg and "(64, 1, 3)" in msg and "(32, 1, 3)" in msg


def test_reference_layout_missing_modules_and_pickles_rejected(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"unet": {}}, bad)
    with pytest.raises(CheckpointError, match="content_encoder"):
        checkpoints.load(bad)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"content_encoder": Evil()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="safely"):
        checkpoints.load(evil)


def test_our_format_round_trip_and_mismatch(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(signal_length=128, **TINY)
    model = DiffStyleTS(cfg)
    bank = (torch.randn(6, cfg.style_dim), torch.tensor([0, 0, 0, 1, 1, 1]))
    norm = Normaliser(offset=0.1, scale=0.5, clamp=9.0)
    path = tmp_path / "m.safetensors"
    sha = checkpoints.save(path, model, normaliser=norm, class_names=("N", "A"), leads=("I",), mode="improved",
                           style_bank=bank)
    loaded = checkpoints.load(path)
    assert loaded.sha256 == sha and loaded.model_cfg == cfg and loaded.normaliser == norm
    assert loaded.class_names == ("N", "A") and loaded.leads == ("I",) and loaded.mode == "improved"
    assert torch.equal(loaded.style_bank[0], bank[0]) and torch.equal(loaded.style_bank[1], bank[1])
    again = checkpoints.load_model(loaded)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError) as err:
        checkpoints.load_model(loaded, ModelConfig(signal_length=128, **{**TINY, "model_channels": 16}))
    assert "down1.conv1.weight" in str(err.value) and "(8, 8, 3)" in str(err.value)


def test_generator_from_our_checkpoint_gives_same_candidates(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(signal_length=128, **TINY)
    model = DiffStyleTS(cfg).eval()
    torch.nn.init.normal_(model.unet.out_conv.weight, std=0.05)
    path = tmp_path / "m.safetensors"
    checkpoints.save(path, model, normaliser=Normaliser(0.0, 0.2, 10.0), class_names=("N", "A"), leads=("I",),
                     mode="improved")
    src = ECGBatch(np.random.default_rng(0).normal(0, 0.2, (3, 1, 128)).astype(np.float32), 250.0, ("I",),
                   labels=[0, 1, 0], class_names=("N", "A"))
    req = GenerationRequest.transfer(src, [1, 0, 1], seed=4, steps=4, rhythm="source")
    a = DiffStyleTSGenerator(checkpoint=str(path), device="cpu").generate(req)
    b = DiffStyleTSGenerator(checkpoint=str(path), device="cpu").generate(req)
    assert np.array_equal(a.batch.signals, b.batch.signals)
    assert a.info.checkpoint_sha256 == b.info.checkpoint_sha256


def test_corrupt_checkpoint_is_named(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        DiffStyleTSGenerator(checkpoint=str(path))
