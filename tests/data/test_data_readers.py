"""Each reader on real files (CinC 2017, PTB-XL) or on a stand-in tree written here (MIMIC-IV-ECG, arrays)."""

from __future__ import annotations

import ast
import warnings

import numpy as np
import pandas as pd
import pytest

from augframe.data.arrays import ArraySource
from augframe.data.cinc2017 import CinC2017Source, read_reference
from augframe.data.mimic import MIMICIVECGSource, report_label
from augframe.data.ptbxl import PTBXLSource, rhythm_label
from augframe.data.wfdb_io import RecordReadError, read_wfdb
from augframe.data.wfdb_source import WFDBSource
from augframe.errors import DataError
from augframe.plugins import Registry
from augframe.protocols import Source

from data_helpers import CINC_A, CINC_N, synthetic_ecg, write_wfdb


def test_cinc2017_reader_matches_files_and_torch_ecg(cinc2017_dir, monkeypatch):
    """Labels and signals agree with REFERENCE.csv and with torch-ecg's independent CINC2017 reader.

    torch-ecg asks PhysioNet for the database version when it builds a reader; the lookup is
    replaced here so the test never touches the network.
    """
    src = CinC2017Source(cinc2017_dir, record_ids=list(CINC_N + CINC_A))
    recs = list(src.records())
    assert [r.id for r in recs] == list(CINC_N + CINC_A) and src.problems == []
    assert [r.label for r in recs] == ["N"] * 3 + ["A"] * 3
    assert all(r.fs == 300.0 and r.leads == ("I",) and r.signal.dtype == np.float32 for r in recs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch_ecg.databases.base as tebase
        from torch_ecg.databases import CINC2017

        monkeypatch.setattr(tebase, "wfdb_get_version", lambda name: "1.0.0")
        db = CINC2017(str(cinc2017_dir), verbose=0)
    for r in recs[:2] + recs[-1:]:
        ref = db.load_data(r.id, units="mV")
        np.testing.assert_allclose(r.signal, ref, atol=1e-6)
        assert db.load_ann(r.id) == r.label


def test_cinc2017_reference_csv_crlf_and_counts(cinc2017_dir):
    labels = read_reference(cinc2017_dir / "REFERENCE.csv")
    assert len(labels) > 5000 and set(labels.values()) <= {"N", "A", "O", "~"}
    assert labels["A00001"] == "N" and not any("\r" in v for v in labels.values())
    src = CinC2017Source(cinc2017_dir, classes=("N", "A"), limit_per_class=5, seed=0)
    chosen, problems = src.selected()
    assert sorted(lab for _, lab in chosen) == ["A"] * 5 + ["N"] * 5
    assert all(p.kind == "excluded-class" for p in problems)


def test_cinc2017_missing_label_file_is_collected(cinc_copy):
    (cinc_copy / "REFERENCE.csv").unlink()
    src = CinC2017Source(cinc_copy, classes=("N", "A"))
    assert list(src.records()) == []
    assert {p.kind for p in src.problems} == {"missing-label"} and len(src.problems) == 6
    unlabelled = CinC2017Source(cinc_copy)  # no classes asked: records come unlabelled
    assert [r.label for r in unlabelled.records()] == [None] * 6


def test_ptbxl_reader_labels_patients_leads(ptbxl_dir):
    src = PTBXLSource(ptbxl_dir, resolution=100, limit_per_class=3, seed=0)
    recs = list(src.records())
    assert src.problems == []
    db = pd.read_csv(ptbxl_dir / "ptbxl_database.csv", index_col="ecg_id")
    for r in recs:
        assert r.fs == 100.0 and r.signal.shape == (12, 1000)
        assert r.leads == ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
        row = db.loc[int(r.id)]
        assert r.patient_id == str(int(row.patient_id)) and r.meta["strat_fold"] == str(int(row.strat_fold))
        codes = ast.literal_eval(row.scp_codes)
        assert r.statements == {k: float(v) for k, v in codes.items()}
        expect = "A" if "AFIB" in codes else ("N" if "SR" in codes else "O")
        assert r.label == expect
    assert sorted({r.label for r in recs}) == ["A", "N", "O"]
    with pytest.raises(DataError, match="resolution=100"):
        PTBXLSource(ptbxl_dir, resolution=500)


def test_ptbxl_likelihood_threshold_and_folds(ptbxl_dir):
    assert rhythm_label({"AFIB": 0.0, "SR": 0.0}, ("AFIB",), ("SR",), 0.0) == "A"
    assert rhythm_label({"AFIB": 0.0, "SR": 100.0}, ("AFIB",), ("SR",), 50.0) == "N"
    assert rhythm_label({"NORM": 100.0}, ("AFIB",), ("SR",), 0.0) == "O"
    src = PTBXLSource(ptbxl_dir, resolution=100, folds=[10], classes=("A", "N"))
    rows, problems = src.plan()
    assert rows and all(r["strat_fold"] == "10" for r in rows)
    assert all(p.kind == "excluded-class" for p in problems)


@pytest.fixture()
def mimic_tree(tmp_path):
    """A small MIMIC-IV-ECG stand-in: 5 studies of 10 s, 500 Hz, 12 leads, with machine reports."""
    root = tmp_path / "mimic"
    leads = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
    reports = {
        40000001: ["Sinus rhythm", "Normal ECG"],
        40000002: ["Atrial fibrillation with rapid ventricular response", "Abnormal ECG"],
        40000003: ["Sinus rhythm with 1st degree A-V block", None],
        40000004: ["Sinus rhythm", "Possible atrial fibrillation"],  # AF only in report_1
        40000005: ["SINUS RHYTHM", None],
    }
    rl, mm = [], []
    for k, (study, rep) in enumerate(reports.items()):
        subject = 10000000 + k // 2  # two studies per patient
        rel = f"files/p{str(subject)[:4]}/p{subject}/s{study}"
        (root / rel).mkdir(parents=True)
        write_wfdb(root / rel, str(study), synthetic_ecg(10, 500, leads=12, seed=k), 500, leads)
        rl.append({"subject_id": subject, "study_id": study, "file_name": study, "ecg_time": "2180-01-01 00:00:00",
                   "path": f"{rel}/{study}"})
        row = {"subject_id": subject, "study_id": study, "cart_id": 1}
        row.update({f"report_{i}": (rep[i] if i < len(rep) else None) for i in range(18)})
        mm.append(row)
    pd.DataFrame(rl).to_csv(root / "record_list.csv", index=False)
    pd.DataFrame(mm).to_csv(root / "machine_measurements.csv", index=False)
    return root


def test_mimic_reader_reference_and_any_report_rules(mimic_tree):
    ref = {r.id: r for r in MIMICIVECGSource(mimic_tree).records()}
    assert {k: r.label for k, r in ref.items()} == {
        "40000001": "N", "40000002": "A", "40000003": "O", "40000004": "N", "40000005": "N"}
    r = ref["40000002"]
    assert r.fs == 500.0 and r.signal.shape == (12, 5000) and r.patient_id == "10000000"
    assert r.leads[4] == "aVF"
    np.testing.assert_allclose(r.signal[1], synthetic_ecg(10, 500, 12, seed=1)[:, 1], atol=1e-3)
    anyrep = {r.id: r.label for r in MIMICIVECGSource(mimic_tree, rule="any-report").records()}
    assert anyrep["40000004"] == "A" and anyrep["40000001"] == "N"
    only = MIMICIVECGSource(mimic_tree, classes=("A",))
    assert [r.id for r in only.records()] == ["40000002"]
    assert report_label(["sinus rhythm "], normal_reports=("Sinus rhythm",)) == "O"
    assert report_label(["AF"], af_pattern=r"\bAF\b|atrial fibrillation") == "A"


def test_mimic_missing_csv_names_the_file(tmp_path):
    with pytest.raises(DataError, match="record_list.csv"):
        MIMICIVECGSource(tmp_path)


def test_wfdb_folder_source_with_label_csv(cinc_copy):
    src = WFDBSource(cinc_copy, labels="REFERENCE.csv", single_lead_as="I", classes=("A",))
    recs = list(src.records())
    assert [r.id for r in recs] == list(CINC_A) and all(r.leads == ("I",) for r in recs)
    assert {p.kind for p in src.problems} == {"excluded-class"}


def test_wfdb_truncated_unreadable_missing(cinc_copy):
    data = (cinc_copy / "A00002.mat").read_bytes()
    (cinc_copy / "A00002.mat").write_bytes(data[: len(data) // 2])
    (cinc_copy / "A00003.hea").write_text("this is not a header\n")
    (cinc_copy / "A00004.mat").unlink()
    kinds = {}
    for rid in ("A00001", "A00002", "A00003", "A00004"):
        try:
            read_wfdb(cinc_copy / rid)
            kinds[rid] = "ok"
        except RecordReadError as err:
            kinds[rid] = err.problem.kind
    assert kinds == {"A00001": "ok", "A00002": "truncated", "A00003": "unreadable", "A00004": "missing-file"}


def test_arrays_npz_reference_layout_npy_and_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2500)).astype(np.float32)
    y = np.array([0, 1, 1, 0])
    np.savez(tmp_path / "train_data.npz", X=x, y=y)
    recs = list(ArraySource(tmp_path / "train_data.npz", fs=250).records())
    assert [r.label for r in recs] == ["N", "A", "A", "N"] and recs[1].id == "train_data:1"
    np.testing.assert_array_equal(recs[2].signal[0], x[2])
    np.save(tmp_path / "x.npy", x.reshape(2, 2, 2500))
    np.save(tmp_path / "y.npy", np.array([1, 0]))
    recs = list(ArraySource(tmp_path / "x.npy", fs=500, leads=("I", "II"), labels=tmp_path / "y.npy").records())
    assert recs[0].signal.shape == (2, 2500) and recs[0].label == "A"
    df = pd.DataFrame(x[:, :50])
    df.insert(0, "label", ["N", "A", "N", "A"])
    df.insert(0, "id", ["a", "b", "c", "d"])
    df.to_csv(tmp_path / "e.csv", index=False)
    recs = list(ArraySource(tmp_path / "e.csv", fs=250, id_column="id").records())
    assert [r.id for r in recs] == ["a", "b", "c", "d"] and recs[1].label == "A"
    np.testing.assert_allclose(recs[3].signal[0], x[3, :50], rtol=1e-6)
    with pytest.raises(DataError, match="lead"):
        list(ArraySource(tmp_path / "x.npy", fs=500, leads=("II",)).records())
    bad = ArraySource(tmp_path / "train_data.npz", fs=250, class_names=("N",))
    with pytest.raises(DataError, match="class_names"):
        list(bad.records())


def test_sources_register_through_the_plugin_hook(cinc2017_dir, tmp_path):
    import augframe.data.plugin as plugin

    reg = Registry()
    reg.register_module(plugin, name="sources")
    assert reg.names("source") == ["arrays", "cinc2017", "demo", "mimic-iv-ecg", "ptbxl", "wfdb", "wfdb-rhythm"]
    src = reg.create("source", "cinc2017", {"root": str(cinc2017_dir), "classes": ["A"], "limit_per_class": 2})
    assert isinstance(src, Source) and len(list(src.records())) == 2
    a = CinC2017Source(cinc2017_dir, classes=("A",), limit_per_class=2, seed=0)
    b = CinC2017Source(cinc2017_dir, classes=("A",), limit_per_class=2, seed=1)
    assert a.fingerprint() == src.fingerprint() != b.fingerprint()


def test_every_source_passes_the_conformance_kit(cinc2017_dir, ptbxl_dir, mimic_tree, cinc_copy, tmp_path):
    from augframe.data.demo import DemoSource
    from augframe.testing import check_source

    np.savez(tmp_path / "a.npz", X=np.zeros((3, 500), np.float32), y=np.array([0, 1, 0]))
    sources = [
        CinC2017Source(cinc2017_dir, classes=("A",), limit_per_class=3),
        PTBXLSource(ptbxl_dir, resolution=100, limit_per_class=2),
        MIMICIVECGSource(mimic_tree),
        WFDBSource(cinc_copy, labels="REFERENCE.csv", single_lead_as="I"),
        ArraySource(tmp_path / "a.npz", fs=250),
        DemoSource(classes=("N",)),
    ]
    for src in sources:
        report = check_source(src, limit=3)
        assert report.kind == "source" and "fingerprint is a stable non-empty string" in report.passed


def test_lead_aliases():
    from augframe.data.wfdb_io import lead_name

    assert lead_name("MLII") == "II" and lead_name("avf") == "aVF" and lead_name("ECG") == "ECG"
    assert lead_name("ECG", single_lead_as="I") == "I" and lead_name("ECG1", aliases={"ecg1": "V2"}) == "V2"
