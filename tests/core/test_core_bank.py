"""Synthetic bank: atomic appends, lazy reads, provenance, crash safety (SIGKILL mid-append)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from augframe import ECGBatch
from augframe.atomic import write_json, write_npy
from augframe.bank import Bank
from augframe.errors import BankError, ValidationError

NAMES = ("N", "A")


def _batch(keys, n_samples=50, fs=125.0):
    """Content is a pure function of the key, so a resumed writer can be checked sample by sample."""
    x = np.stack([np.full((1, n_samples), float(int(k.split("-")[1])), np.float32) for k in keys])
    labels = [int(k.split("-")[1]) % 2 for k in keys]
    return ECGBatch(x, fs, ("II",), labels=labels, class_names=NAMES, ids=list(keys))


def _rows(keys):
    return [{"key": k, "seed": i, "source_id": f"src-{k}", "generator": {"name": "g", "version": "1"}}
            for i, k in enumerate(keys)]


def _new(path, **kw):
    return Bank.create(path, fs=kw.get("fs", 125.0), leads=("II",), samples_per_window=kw.get("n_samples", 50),
                       class_names=NAMES)


def test_append_read_and_provenance(tmp_path):
    bank = _new(tmp_path / "b")
    keys = [f"k-{i}" for i in range(7)]
    assert bank.append(_batch(keys[:3]), _rows(keys[:3])) == 3
    assert bank.append(_batch(keys[3:]), _rows(keys[3:])) == 4
    bank.close()
    r = Bank.open(tmp_path / "b", verify="full")
    assert len(r) == 7 and r.n_shards == 2
    assert r.keys == tuple(keys)
    assert np.array_equal(r.labels, [i % 2 for i in range(7)])
    sig, label = r[5]
    assert sig.shape == (1, 50) and sig.dtype == np.float32 and np.all(sig == 5.0) and label == 1
    assert np.all(r.signals([6, 0])[:, 0, 0] == [6.0, 0.0])
    row = r.rows(4)[0]
    assert row["key"] == "k-4" and row["source_id"] == "src-k-4" and row["generator"]["name"] == "g"
    assert r.batch([1, 2]).ids == ("k-1", "k-2")
    assert "k-3" in r and r.index_of("k-3") == 3
    assert r.missing(["k-1", "k-99"]) == ["k-99"]
    meta = json.loads((tmp_path / "b" / "bank.json").read_text())
    assert meta["fs"] == 125.0 and meta["leads"] == ["II"] and meta["class_names"] == list(NAMES)


def test_bad_appends_raise_bank_error(tmp_path):
    bank = _new(tmp_path / "b")
    bank.append(_batch(["k-0"]), _rows(["k-0"]))
    with pytest.raises(BankError, match="already holds key 'k-0'"):
        bank.append(_batch(["k-0"]), _rows(["k-0"]))
    assert bank.append(_batch(["k-0", "k-1"]), _rows(["k-0", "k-1"]), skip_existing=True) == 1
    with pytest.raises(BankError, match="fs=250.0"):
        bank.append(_batch(["k-5"], fs=250.0), _rows(["k-5"]))
    with pytest.raises(BankError, match="samples_per_window=60"):
        bank.append(_batch(["k-5"], n_samples=60), _rows(["k-5"]))
    with pytest.raises(BankError, match="more than once"):
        bank.append(_batch(["k-7", "k-7"]), _rows(["k-7", "k-7"]))
    with pytest.raises(BankError, match="no 'key'"):
        bank.append(_batch(["k-8"]), [{"seed": 1}])
    with pytest.raises(BankError, match="another process is appending"):
        Bank.open(tmp_path / "b", writable=True)
    bank.close()
    with pytest.raises(BankError, match="read-only"):
        Bank.open(tmp_path / "b").append(_batch(["k-9"]), _rows(["k-9"]))
    with pytest.raises(BankError, match="samples_per_window=50 but this run makes samples_per_window=99"):
        Bank.open_or_create(tmp_path / "b", fs=125.0, leads=("II",), samples_per_window=99, class_names=NAMES)
    with pytest.raises(BankError, match="already holds a bank"):
        _new(tmp_path / "b")
    with pytest.raises(BankError, match="not a synthetic bank"):
        Bank.open(tmp_path / "nothing")
    with pytest.raises(ValidationError, match="verify="):
        Bank.open(tmp_path / "b", verify="sometimes")


def test_corruption_is_detected(tmp_path):
    bank = _new(tmp_path / "b")
    bank.append(_batch(["k-1", "k-2"]), _rows(["k-1", "k-2"]))
    bank.close()
    npy = tmp_path / "b" / "shard-000000.npy"
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF
    npy.write_bytes(bytes(data))
    with pytest.raises(BankError, match="does not match the sha256"):
        Bank.open(tmp_path / "b", verify="full")
    lazy = Bank.open(tmp_path / "b", verify="lazy")  # opening is cheap; the first read checks
    with pytest.raises(BankError, match="does not match the sha256"):
        lazy[0]
    assert Bank.open(tmp_path / "b", verify="none")[0][0].shape == (1, 50)


def test_orphans_of_a_killed_writer_are_removed(tmp_path):
    bank = _new(tmp_path / "b")
    bank.append(_batch(["k-1"]), _rows(["k-1"]))
    bank.close()
    d = tmp_path / "b"
    write_npy(d / "shard-000001.npy", np.zeros((2, 1, 50), np.float32))  # data written, manifest not
    (d / ".shard-000002.npy.abc.tmp").write_bytes(b"half")
    reader = Bank.open(d)  # a reader never deletes (a live writer's files look the same)
    assert len(reader) == 1 and (d / "shard-000001.npy").exists()
    writer = Bank.open(d, writable=True)
    assert not (d / "shard-000001.npy").exists() and not list(d.glob(".*.tmp"))
    assert writer.append(_batch(["k-2"]), _rows(["k-2"])) == 1
    assert (d / "shard-000001.json").exists() and len(writer) == 2


def test_pickled_bank_reads_in_another_process_without_the_lock(tmp_path):
    bank = _new(tmp_path / "b")
    bank.append(_batch(["k-3"]), _rows(["k-3"]))
    bank[0]
    clone = pickle.loads(pickle.dumps(bank))
    assert not clone.writable and clone._cache == {}
    assert float(clone[0][0][0, 0]) == 3.0
    bank.close()


_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from augframe import ECGBatch
    from augframe.bank import Bank
    path, total, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    bank = Bank.open_or_create(path, fs=125.0, leads=("II",), samples_per_window=20000, class_names=("N", "A"))
    keys = bank.missing([f"k-{i}" for i in range(total)])
    print("start", len(bank), flush=True)
    for s in range(0, len(keys), per):
        chunk = keys[s:s + per]
        x = np.stack([np.full((1, 20000), float(int(k.split("-")[1])), np.float32) for k in chunk])
        labels = [int(k.split("-")[1]) % 2 for k in chunk]
        bank.append(ECGBatch(x, 125.0, ("II",), labels=labels, class_names=("N", "A")),
                    [{"key": k} for k in chunk])
        print("appended", len(bank), flush=True)
    print("done", len(bank), flush=True)
""")


def test_sigkill_during_appends_then_resume_is_consistent(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    path, total, per = tmp_path / "bank", 1500, 25  # 24 shards of 2 MB: fsync keeps each append busy
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = np.random.default_rng(0)
    kills, mid_write = 0, 0
    while kills < 3 or (mid_write == 0 and kills < 10):
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(total), str(per)],
                                stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout.readline().startswith("start")
        for _ in range(int(rng.integers(1, 4))):  # 1-3 appends committed in this process ...
            proc.stdout.readline()
        time.sleep(float(rng.uniform(0.0, 0.02)))  # ... then kill at an arbitrary point of the next one
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the writer finished before it was killed"
        kills += 1
        committed = {p.stem for p in path.glob("shard-*.json")}
        orphans = [p for p in path.glob("shard-*.npy") if p.stem not in committed] + list(path.glob(".*.tmp"))
        mid_write += bool(orphans)  # killed inside an append: half-written files are on disk
        mid = Bank.open(path, verify="full")  # consistent after every kill: hashes, keys, contents
        assert len(set(mid.keys)) == len(mid)
        for i in range(0, len(mid), 37):
            assert float(mid[i][0][0, 0]) == float(mid.keys[i].split("-")[1])
    assert mid_write >= 1, "no kill landed inside an append; the test did not test what it claims"
    done = subprocess.run([sys.executable, str(script), str(path), str(total), str(per)],
                          capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip().endswith(f"done {total}")
    bank = Bank.open(path, verify="full")
    assert sorted(bank.keys, key=lambda k: int(k.split("-")[1])) == [f"k-{i}" for i in range(total)]
    values = bank.signals(np.arange(len(bank)))[:, 0, 0]
    assert np.array_equal(values, [float(k.split("-")[1]) for k in bank.keys])
    assert not list(path.glob(".*.tmp"))
    committed = {p.stem for p in path.glob("shard-*.json")}
    assert {p.stem for p in path.glob("shard-*.npy")} == committed


def test_atomic_json_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "x.json"
    write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert not list(tmp_path.glob(".*.tmp"))


def test_atomic_files_get_ordinary_permissions(tmp_path):
    from augframe.atomic import DEFAULT_MODE, write_text

    write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == DEFAULT_MODE  # not mkstemp's 0600


def test_batched_read_equals_single_reads(tmp_path):
    bank = _new(tmp_path / "b")
    for s in range(0, 9, 3):  # three shards
        keys = [f"k-{i}" for i in range(s, s + 3)]
        bank.append(_batch(keys), _rows(keys))
    bank.close()
    r = Bank.open(tmp_path / "b")
    idx = [8, 0, 4, 4, -1, 3]
    got = r.read(idx)
    assert got.shape == (6, 1, 50) and got.dtype == np.float32
    assert np.array_equal(got, np.stack([r[i][0] for i in idx]))
    assert np.array_equal(got[:, 0, 0], [8, 0, 4, 4, 8, 3])
    out = np.full((2, 1, 50), np.nan, np.float32)
    assert r.read([1, 7], out=out) is out and np.array_equal(out[:, 0, 0], [1, 7])
    assert r.read([]).shape == (0, 1, 50)
    with pytest.raises(IndexError, match="index 9 out of range"):
        r.read([0, 9])
    with pytest.raises(ValidationError, match="Bank.read out"):
        r.read([0, 1], out=np.zeros((2, 1, 49), np.float32))


def test_forked_child_reads_through_its_own_handles(tmp_path):
    bank = _new(tmp_path / "b")
    bank.append(_batch(["k-3", "k-4"]), _rows(["k-3", "k-4"]))
    bank.close()
    r = Bank.open(tmp_path / "b")
    assert float(r[1][0][0, 0]) == 4.0  # opens the shard in this process
    parent_fd = r._fds[0][0]
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the at-fork hook must make the bank reopen its shard here
        try:
            ok = float(r[0][0][0, 0]) == 3.0 and float(r.read([1])[0, 0, 0]) == 4.0
            ok = ok and r._pid == os.getpid() and r._fds[0][0] != parent_fd
            os.write(wfd, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(wfd)
    os.waitpid(pid, 0)
    assert os.read(rfd, 1) == b"1"
    os.close(rfd)
    assert r._fds[0][0] == parent_fd  # the parent's handle is untouched
