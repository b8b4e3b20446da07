"""The generator through the registry: fit on real windows, generate, seeds, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augframe.errors import PluginError, ValidationError
from augframe.plugins import Registry
from augframe.protocols import Generator, GenerationRequest
from augframe_diffstylets.pipeline import CHECKPOINT_FILE, DiffStyleTSGenerator, resample_length

from diffstylets_helpers import TINY

SAMPLER = dict(steps=4, rhythm="source")  # 1 s windows: no rhythm to re-time (see test_diffstylets_rhythm.py)


def _request(windows, n=6, seed=5, **options):
    src = windows.select(np.arange(n))
    return GenerationRequest.transfer(src, 1 - src.labels, seed=seed, **options)


def test_registered_and_satisfies_protocol():
    reg = Registry.discover()
    gen = reg.create("generator", "diffstylets", {"model": TINY, "device": "cpu"})
    assert isinstance(gen, Generator)
    assert gen.request_kinds == {"transfer", "sample"}
    assert gen.info.name == "diffstylets" and gen.info.params["mode"] == "improved"
    with pytest.raises(PluginError, match="fit"):
        gen.generate(GenerationRequest.sample([0], seed=0))


def test_fit_writes_checkpoint_log_and_bank(fitted):
    gen, result, workdir = fitted
    assert (workdir / CHECKPOINT_FILE).is_file() and (workdir / "train_log.jsonl").is_file()
    assert result["epochs"] == 13 and len(result["history"]["stage2_flip"]) == 1
    assert gen.info.checkpoint_sha256 == result["sha256"]
    styles, labels = gen.style_bank
    assert styles.shape == (16, TINY["style_dim"]) and sorted(set(labels.tolist())) == [0, 1]
    assert gen.class_names == ("N", "A") and gen.model.cfg.signal_length == 256


def test_transfer_shapes_labels_provenance(fitted, short_windows):
    gen, _, _ = fitted
    req = _request(short_windows)
    out = gen.generate(req)
    assert out.batch.signals.shape == (6, 1, 256) and out.batch.signals.dtype == np.float32
    assert np.isfinite(out.batch.signals).all()
    assert np.array_equal(out.batch.labels, req.labels) and out.batch.class_names == ("N", "A")
    assert out.source_ids == req.sources.ids and np.array_equal(out.seeds, req.seeds)
    assert out.batch.fs == 250.0 and out.batch.units == req.sources.units
    assert not np.allclose(out.batch.signals, req.sources.signals)


def test_determinism_and_batch_size_invariance(fitted, short_windows):
    gen, _, _ = fitted
    req = _request(short_windows)
    a = gen.generate(req).batch.signals
    assert np.array_equal(a, gen.generate(req).batch.signals)
    gen.micro_batch = 4
    try:
        chunked = gen.generate(req).batch.signals
        part = gen.generate(req.select(np.array([5, 2]))).batch.signals
    finally:
        gen.micro_batch = 32
    np.testing.assert_allclose(chunked, a, atol=1e-5)
    np.testing.assert_allclose(part, a[[5, 2]], atol=1e-5)
    other = gen.generate(_request(short_windows, seed=6)).batch.signals
    assert np.abs(other - a).max() > 1e-3


@pytest.mark.parametrize("source", ["reference", "prototype"])
def test_style_sources(fitted, short_windows, source):
    gen, _, _ = fitted
    req = _request(short_windows, n=4)
    base = gen.generate(req).batch.signals
    gen.style_source = source
    try:
        out = gen.generate(req).batch.signals
        refs = gen.generate(_request(short_windows, n=4, references=short_windows.select(np.arange(10, 14))))
    finally:
        gen.style_source = "self"
    assert out.shape == base.shape and np.abs(out - base).max() > 1e-5
    assert refs.batch.signals.shape == base.shape


def test_sample_kind(fitted):
    gen, _, _ = fitted
    out = gen.generate(GenerationRequest.sample([0, 1, 1], seed=2, class_names=("N", "A")))
    assert out.batch.signals.shape == (3, 1, 256) and np.array_equal(out.batch.labels, [0, 1, 1])
    assert out.batch.leads == ("I",)


def test_length_policy_resample_or_reject(fitted, short_windows):
    gen, _, _ = fitted
    src = short_windows.select(np.arange(2))
    longer = src.with_signals(resample_length(torch.from_numpy(src.signals), 300).numpy(), fs=250 * 300 / 256)
    req = GenerationRequest.transfer(longer, [1, 0], seed=1)
    with pytest.raises(ValidationError, match="length_policy='resample'"):
        gen.generate(req)
    gen.length_policy = "resample"
    try:
        out = gen.generate(req)
    finally:
        gen.length_policy = "reject"
    assert out.batch.signals.shape == (2, 1, 300) and out.batch.fs == longer.fs


def test_nan_source_rejected_by_name(fitted, short_windows):
    gen, _, _ = fitted
    src = short_windows.select(np.arange(3))
    signals = src.signals.copy()
    bad = src.with_signals(signals)
    signals[1, 0, 10] = np.nan  # poisoned after the batch was validated
    with pytest.raises(ValidationError, match=repr(src.ids[1])):
        gen.generate(GenerationRequest.transfer(bad, [1, 1, 1], seed=0))


def test_unknown_choices_list_valid_ones():
    with pytest.raises(ValidationError, match="'faithful', 'improved'"):
        DiffStyleTSGenerator(mode="fast")
    with pytest.raises(ValidationError, match="'self', 'reference', 'prototype'"):
        DiffStyleTSGenerator(style_source="random")
    with pytest.raises(ValidationError, match="did you mean 'steps'"):
        DiffStyleTSGenerator(sampler={"stepz": 3})
    with pytest.raises(ValidationError, match="strength"):
        DiffStyleTSGenerator(sampler={"strength": 1.5})


def test_unknown_request_option_named(fitted, short_windows):
    gen, _, _ = fitted
    with pytest.raises(ValidationError, match="guidanse"):
        gen.generate(_request(short_windows, n=1, guidanse=2.0))


def test_faithful_reference_clamp_and_reload(fitted, short_windows):
    gen, _, workdir = fitted
    again = DiffStyleTSGenerator(checkpoint=str(workdir / CHECKPOINT_FILE), sampler=SAMPLER, device="cpu")
    req = _request(short_windows, n=2)
    np.testing.assert_array_equal(again.generate(req).batch.signals, gen.generate(req).batch.signals)


def test_conformance_kit(fitted, short_windows):
    from augframe.testing import check_generator

    gen, _, _ = fitted
    report = check_generator(gen, sources=short_windows.select(np.arange(4)), class_names=("N", "A"))
    assert report is not None


def test_request_class_names_in_other_order_are_mapped(fitted, short_windows):
    gen, _, _ = fitted
    src = short_windows.select(np.arange(2))
    swapped = GenerationRequest.transfer(src, [1, 1], seed=0)  # class names ("N", "A"): index 1 = A
    flipped = GenerationRequest("transfer", np.array([0, 0]), swapped.seeds, sources=src, class_names=("A", "N"))
    a, b = gen.generate(swapped), gen.generate(flipped)
    np.testing.assert_array_equal(a.batch.signals, b.batch.signals)
    assert b.batch.class_names == ("A", "N") and list(b.batch.labels) == [0, 0]


def test_bf16_and_compiled_unet_stay_close_to_float32(fitted, short_windows):
    """precision='bfloat16' (the packed time-major bf16 UNet on the CPU) and compile=True change speed,
    not the ECGs. Compilation is checked on the float32 module: the time-major graph compiles the same
    way but takes minutes (and is slower compiled on the CPU, docs/benchmarks.md)."""
    from augframe_diffstylets.timemajor import TimeMajorUNet

    gen, _, _ = fitted
    req = _request(short_windows, n=4)
    ref = gen.generate(req).batch.signals
    scale = np.abs(ref).max()
    try:
        gen.precision = "bfloat16"
        bf = gen.generate(req).batch.signals
        assert isinstance(gen._bf16_unet, TimeMajorUNet)
        gen.precision, gen.compile = "float32", True
        compiled = gen.generate(req).batch.signals
        assert gen._compiled is not None and gen._compiled[0] is gen.model.unet
    finally:
        gen.precision, gen.compile = "auto", False
        gen._drop_derived()
    assert np.abs(bf - ref).max() < 0.05 * scale
    assert np.corrcoef(bf.ravel(), ref.ravel())[0, 1] > 0.999
    assert np.abs(compiled - ref).max() < 1e-3 * scale
