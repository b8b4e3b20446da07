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
