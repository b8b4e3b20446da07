"""Readers on hostile files: each either reads the exact values or names the problem (never shifted,
truncated or cast data). Property-based (hypothesis) with a bounded example count."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from augframe.data.arrays import ArraySource
from augframe.data.cinc2017 import read_reference
from augframe.data.wfdb_io import RecordReadError, read_wfdb
from augframe.errors import DataError

_FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _write_cinc(folder, values, *, var="val", gain="1000", declared=None, offset=None, name="R1"):
    """A CinC-2017-style record: MATLAB v4 int16 matrix + a WFDB header that points into it."""
    values = np.asarray(values, dtype="<i2")
    nb = var.encode() + b"\0"
    head = np.array([30, 1, len(values), 0, len(nb)], dtype="<i4").tobytes() + nb
    (folder / f"{name}.mat").write_bytes(head + values.tobytes())
    declared = len(values) if declared is None else declared
    offset = len(head) if offset is None else offset
    (folder / f"{name}.hea").write_text(f"{name} 1 300 {declared}\n{name}.mat 16+{offset} {gain}/mV 16 0 0 0 0 ECG\n")
    return folder / name


def test_a_cinc_mat_with_another_variable_is_refused_not_shifted(tmp_path):
    rec = read_wfdb(_write_cinc(tmp_path, [100, -200, 300, 400]))
    assert np.array_equal(rec.signal[0], np.array([0.1, -0.2, 0.3, 0.4], np.float32))
    # header written for 'val' (offset 24) but the file holds 'x': wfdb alone reads header bytes as samples
    path = _write_cinc(tmp_path, [100, -200, 300, 400], var="x", offset=24, declared=3)
    with pytest.raises(RecordReadError, match="'x', not 'val'"):
        read_wfdb(path)


@pytest.mark.parametrize("gain, declared, match", [("0", None, "gain"), ("-5", None, "gain"),
                                                   ("1000", -5, "'-5' samples")])
def test_impossible_headers_are_refused(tmp_path, gain, declared, match):
    with pytest.raises(RecordReadError, match=match):
        read_wfdb(_write_cinc(tmp_path, [1, 2, 3, 4], gain=gain, declared=declared))


def test_a_fifo_header_does_not_hang_the_reader(tmp_path):
    os.mkfifo(tmp_path / "F.hea")
    with pytest.raises(RecordReadError, match="not a regular file"):
        read_wfdb(tmp_path / "F")


@_FAST
@given(values=st.lists(st.integers(-2000, 2000), min_size=1, max_size=12),
       var=st.sampled_from(["val", "x", "value"]), gain=st.sampled_from(["1000", "200", "0", "-1", "1e-300"]),
       declared_delta=st.integers(-3, 3), offset_delta=st.sampled_from([0, 0, -2, 2]))
def test_cinc_records_are_exact_or_refused(tmp_path_factory, values, var, gain, declared_delta, offset_delta):
    folder = tmp_path_factory.mktemp("rec")
    base = 20 + len(var) + 1
    path = _write_cinc(folder, values, var=var, gain=gain, declared=len(values) + declared_delta,
                       offset=base + offset_delta)
    try:
        rec = read_wfdb(path)
    except RecordReadError:
        return
    assert var == "val" and declared_delta == 0 and offset_delta == 0 and float(gain) > 0
    np.testing.assert_allclose(rec.signal[0], np.asarray(values) / float(gain), rtol=1e-6)


def test_reference_csv_bom_encoding_and_folder(tmp_path):
    ref = tmp_path / "REFERENCE.csv"
    ref.write_bytes(b"\xef\xbb\xbfA00001,N\r\nA00002,A\r\n")
    assert read_reference(ref) == {"A00001": "N", "A00002": "A"}  # the BOM does not eat the first record
    ref.write_bytes(b"A00001,N\r\n\xff\xfe,A\r\n")
    with pytest.raises(DataError, match="UTF-8"):
        read_reference(ref)
    with pytest.raises(DataError, match="not a file"):
        read_reference(tmp_path)


@_FAST
@given(labels=st.lists(st.one_of(st.integers(-1, 1), st.floats(-1, 2), st.just(float("nan"))),
                       min_size=2, max_size=2),
       dtype=st.sampled_from([np.float32, np.complex64, np.int16]))
def test_npz_arrays_are_exact_or_refused(tmp_path_factory, labels, dtype):
    path = tmp_path_factory.mktemp("npz") / "d.npz"
    x = (np.arange(2 * 5).reshape(2, 5) + (1j if dtype is np.complex64 else 0)).astype(dtype)
    np.savez(path, X=x, y=np.asarray(labels))
    try:
        recs = list(ArraySource(path, fs=250.0).records())
    except DataError:
        return
    assert dtype is not np.complex64
    for r, y, row in zip(recs, labels, x):
        assert float(y) == int(y) and r.label == (None if int(y) < 0 else ("N", "A")[int(y)])
        assert np.array_equal(r.signal[0], row.astype(np.float32))


def test_a_killed_cache_build_leaves_no_partial_folder_forever(tmp_path):
    from augframe.data.cache import _claim, remove_dead_partials

    dead = tmp_path / ".k1.a.partial"
    dead.mkdir()
    (dead / ".building").write_text("")  # its builder was SIGKILLed: nobody holds the lock
    live = tmp_path / ".k2.b.partial"
    live.mkdir()
    fd = _claim(live)  # a build in progress
    try:
        assert remove_dead_partials(tmp_path) == [dead]
        assert not dead.exists() and live.exists()
    finally:
        os.close(fd)
