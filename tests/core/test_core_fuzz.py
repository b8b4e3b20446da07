"""Property-based checks (hypothesis): hostile values give a named augframe error or an exact result.

"Exact" means no silent loss: what comes out equals what went in (as float32 / int64). Example
counts are bounded (``_FAST``) so the whole file stays a few seconds on one core.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from augframe.errors import AugframeError, ValidationError
from augframe.signals import ECGBatch

_FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

_FS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10_000), st.text(max_size=4),
                st.none(), st.complex_numbers(max_magnitude=1e3), st.booleans())
_SIGNAL_DTYPES = st.sampled_from([np.float32, np.float64, np.int16, np.int64, np.complex64, np.bool_, np.float16])


@_FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4), dtype=_SIGNAL_DTYPES, fs=_FS,
       data=st.data())
def test_ecgbatch_is_exact_or_refused(shape, dtype, fs, data):
    x = data.draw(hnp.arrays(dtype, shape))
    if data.draw(st.booleans()) and x.ndim:
        x = x[::-1]  # negative strides
    try:
        b = ECGBatch(x, fs)
    except ValidationError as exc:
        assert "ECGBatch" in str(exc)  # names the field
        return
    assert x.ndim == 3 and x.shape[1] >= 1 and x.shape[2] >= 1
    assert np.dtype(dtype).kind in "iuf" and not isinstance(fs, (str, bool, complex)) and fs is not None
    assert b.fs == float(fs) and b.fs > 0
    assert np.array_equal(b.numpy(), x.astype(np.float32)) and np.isfinite(b.numpy()).all()
    assert b.torch().shape == x.shape and len(b.select(np.arange(len(b))[::-1])) == len(b)


@_FAST
@given(labels=st.lists(st.one_of(st.integers(-3, 4), st.floats(allow_nan=True, allow_infinity=True)),
                       min_size=3, max_size=3),
       names=st.lists(st.sampled_from(["N", "A", "O", ""]), max_size=4))
def test_ecgbatch_labels_are_exact_or_refused(labels, names):
    x = np.zeros((3, 1, 8), np.float32)
    try:
        b = ECGBatch(x, 100.0, labels=np.asarray(labels), class_names=names)
    except ValidationError as exc:
        assert "ECGBatch" in str(exc)
        return
    assert np.array_equal(b.labels.astype(np.float64), np.asarray(labels, dtype=np.float64))  # no truncation
    assert len(set(b.class_names)) == len(b.class_names) and all(b.class_names)
    if b.class_names:
        assert b.labels.min() >= -1 and b.labels.max() < len(b.class_names)


def test_named_hostile_batches():
    x = np.zeros((2, 1, 8), np.float32)
    for kw, text in ((dict(fs="abc"), "ECGBatch.fs='abc'"), (dict(fs=None), "ECGBatch.fs=None"),
                     (dict(fs=1j), "ECGBatch.fs=1j"), (dict(labels=[0.7, 1.9]), "0.7"),
                     (dict(labels=[np.nan, 0]), "nan"), (dict(class_names=["N", "N"]), "repeats")):
        try:
            ECGBatch(**{"signals": x, "fs": 100.0, **kw})
        except AugframeError as exc:
            assert text in str(exc)
        else:
            raise AssertionError(f"{kw} was accepted")
    flipped = np.arange(16, dtype=np.float32).reshape(2, 1, 8)[::-1]
    b = ECGBatch(flipped, 100.0)
    assert np.array_equal(b.torch().numpy(), flipped) and np.array_equal(b.select([1]).numpy(), flipped[1:])


# --- bank files -------------------------------------------------------------------------------
def _small_bank(path):
    from augframe.bank import Bank

    x = np.arange(2 * 1 * 6, dtype=np.float32).reshape(2, 1, 6)
    with Bank.create(path, fs=100.0, leads=["II"], samples_per_window=6, class_names=["N", "A"]) as bank:
        bank.append(ECGBatch(x, 100.0, labels=[0, 1], class_names=["N", "A"]), [{"key": "a"}, {"key": "b"}])
    return x


_JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), st.text(max_size=6),
                  st.just("../outside.npy"), st.just("a\0"), st.lists(st.integers(0, 2), max_size=3),
                  st.just({}), st.just([]))


@_FAST
@given(target=st.sampled_from(["bank.json", "shard-000000.json"]), field=st.sampled_from(
    ["fs", "leads", "n_samples", "class_names", "units", "multilabel", "format", "npy", "n", "sha256", "rows",
     "rows.0.key", "rows.1.label", "(whole)"]), value=_JUNK, drop=st.booleans())
def test_hand_edited_bank_files_give_bank_errors_or_the_exact_data(tmp_path_factory, target, field, value, drop):
    import json

    from augframe.bank import Bank
    from augframe.errors import BankError

    path = tmp_path_factory.mktemp("bank")
    x = _small_bank(path)
    doc = json.loads((path / target).read_text())
    if field == "(whole)":
        doc = value
    else:
        parts, node = field.split("."), doc
        if parts[0] not in doc:
            return  # the field belongs to the other file
        for p in parts[:-1]:
            node = node[p] if isinstance(node, dict) else node[int(p)]
        last = parts[-1]
        if last not in node and not isinstance(node, list):
            return
        if drop and isinstance(node, dict):
            node.pop(last)
        else:
            node[last if isinstance(node, dict) else int(last)] = value
    (path / target).write_text(json.dumps(doc))
    try:
        bank = Bank.open(path, verify="full")
        got = bank.batch()
    except BankError:
        return
    assert np.array_equal(got.numpy(), x) and got.ids == ("a", "b") and got.labels.tolist() == [0, 1]


def test_bank_refuses_nul_keys_outside_paths_and_nan_shards(tmp_path):
    import json

    from augframe import atomic
    from augframe.bank import Bank
    from augframe.errors import BankError

    x = _small_bank(tmp_path / "b")
    with Bank.open(tmp_path / "b", writable=True) as bank:
        try:
            bank.append(ECGBatch(x[:1], 100.0, labels=[0], class_names=["N", "A"]), [{"key": "c\0"}])
        except BankError as exc:
            assert "NUL" in str(exc)
        else:
            raise AssertionError("a key ending in NUL was accepted")
    manifest = tmp_path / "b" / "shard-000000.json"
    doc = json.loads(manifest.read_text())
    bad = dict(doc, npy="../outside.npy")
    manifest.write_text(json.dumps(bad))
    try:
        Bank.open(tmp_path / "b")
    except BankError as exc:
        assert "outside.npy" in str(exc)
    else:
        raise AssertionError("a manifest pointing outside the bank was accepted")
    y = x.copy()
    y[0, 0, 0] = np.nan
    doc["sha256"] = atomic.write_npy(tmp_path / "b" / "shard-000000.npy", y)  # NaN with a matching hash
    manifest.write_text(json.dumps(doc))
    try:
        Bank.open(tmp_path / "b", verify="full")
    except BankError as exc:
        assert "NaN" in str(exc)
    else:
        raise AssertionError("a shard holding NaN was accepted")


# --- checkpoints ------------------------------------------------------------------------------
@_FAST
@given(config=st.one_of(st.text(max_size=8), st.just("[1, 2]"), st.just("{\"model\": 1}"), st.just("null"),
                        st.just("[" * 5000 + "]" * 5000)), fmt=st.booleans())
def test_checkpoint_metadata_gives_checkpoint_errors_or_a_config(tmp_path_factory, config, fmt):
    import torch
    from safetensors.torch import save

    from augframe.checkpoint import CONFIG_KEY, FORMAT, FORMAT_KEY, load_weights, read_config
    from augframe.errors import CheckpointError

    path = tmp_path_factory.mktemp("ckpt") / "w.safetensors"
    meta = {CONFIG_KEY: config, **({FORMAT_KEY: FORMAT} if fmt else {})}
    path.write_bytes(save({"m.w": torch.zeros(2)}, metadata=meta))
    for load in (lambda: load_weights(path)[1], lambda: read_config(path)):
        try:
            got = load()
        except CheckpointError:
            continue
        assert isinstance(got, dict) and got == __import__("json").loads(config)


def test_a_train_state_without_modules_is_a_checkpoint_error(tmp_path):
    import torch

    from augframe.errors import CheckpointError
    from augframe.training import load_train_state

    path = tmp_path / "state.pt"
    torch.save({"format": "augframe-train-state-1", "counters": {}}, path)
    try:
        load_train_state(path, modules={"net": torch.nn.Linear(2, 2)})
    except CheckpointError as exc:
        assert "incomplete" in str(exc)
    else:
        raise AssertionError("a train state without modules was accepted")
