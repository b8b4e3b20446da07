"""Training on real ECGs, resumable state, checkpoint round trip, plugin discovery."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.errors import CheckpointError
from augframe.protocols import GenerationRequest
from augframe_diffecg.generator import DiffECGGenerator
from augframe_diffecg.masks import long_gap_mask


def test_loss_decreases_on_real_windows(cinc_windows, tiny):
    gen = DiffECGGenerator(**tiny, train_steps=100, train_batch_size=8, crop=256, lr=2e-3)
    gen.fit(cinc_windows, seed=0)
    losses = np.array([r["loss"] for r in gen.train_log])  # mean loss of steps 1-25, 26-50, ...
    assert len(losses) == 4
    assert losses[-1] < 0.5 * losses[0], losses


def test_resume_replays_the_same_batches(cinc_beats, tmp_path, tiny):
    straight = DiffECGGenerator(**tiny, train_steps=6, train_batch_size=4)
    straight.fit(cinc_beats, seed=3)
    resumed = DiffECGGenerator(**tiny, train_steps=3, train_batch_size=4)
    resumed.fit(cinc_beats, seed=3, workdir=tmp_path)
    resumed = DiffECGGenerator(**tiny, train_steps=6, train_batch_size=4)
    resumed.fit(cinc_beats, seed=3, workdir=tmp_path)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-6, err_msg=key)
    assert (tmp_path / "diffecg.safetensors").is_file()
    assert (tmp_path / "train_log.jsonl").is_file()


def test_checkpoint_round_trip(tiny_beat_generator, cinc_beats, tmp_path):
    path = tiny_beat_generator.save(tmp_path / "m.safetensors")
    loaded = DiffECGGenerator(checkpoint=str(path), steps=4)
    assert loaded.config == tiny_beat_generator.config
    assert loaded.info.checkpoint_sha256 == tiny_beat_generator.info.checkpoint_sha256
    beats = cinc_beats.select(np.arange(4))
    req = GenerationRequest.complete(beats, long_gap_mask(beats.signals.shape, 0.4, seed=0), seed=9)
    assert np.array_equal(loaded.generate(req).batch.numpy(), tiny_beat_generator.generate(req).batch.numpy())


def test_corrupt_or_foreign_checkpoint(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        DiffECGGenerator(checkpoint=str(bad))
    from augframe.checkpoint import save_weights
    import torch

    other = tmp_path / "other.safetensors"
    save_weights(other, {"w": torch.zeros(2)}, {"format": "something-else"})
    with pytest.raises(CheckpointError, match="not a DiffECG checkpoint"):
        DiffECGGenerator(checkpoint=str(other))
    with pytest.raises(CheckpointError, match="does not exist"):
        DiffECGGenerator(checkpoint=str(tmp_path / "missing.safetensors"))


def test_plugin_is_discovered_through_the_registry(tiny_beat_generator, tmp_path):
    from augframe.plugins import Registry
    from augframe.protocols import Generator

    path = tiny_beat_generator.save(tmp_path / "m.safetensors")
    gen = Registry.discover(allow=["diffecg"]).create("generator", "diffecg", {"checkpoint": str(path), "steps": 3})
    assert isinstance(gen, Generator)
    assert gen.request_kinds == frozenset({"sample", "complete"})
    out = gen.generate(GenerationRequest.sample([1, 0], seed=0, class_names=("N", "A")))
    assert out.batch.signals.shape == (2, 1, 192)
