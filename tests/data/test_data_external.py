"""External test sets: rhythm episodes, one-class records, subject grouping, the per-record cap, recipes."""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import numpy as np
import pytest

from augframe import recipe as R
from augframe.data.external import external_config, load_external_sets, read_external
from augframe.data.normalise import Normaliser
from augframe.data.prepare import RunData
from augframe.data.preprocess import PreprocessConfig
from augframe.data.rhythm_episodes import WFDBRhythmSource, rhythm_episodes
from augframe.errors import DataError, RecipeError
from augframe.signals import ECGBatch
from data_helpers import synthetic_ecg, write_wfdb

SHARED = Path(os.environ.get("AUGFRAME_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
EXTERNAL = SHARED / "data" / "external"
FS = 128.0
CFG = PreprocessConfig(leads="first", fs=250.0, window_s=10.0)
#: (onset s, aux note) of the synthetic record's rhythm changes; it is 100 s long.
CHANGES = [(3.0, "(N"), (25.0, "(AFIB"), (57.0, "(AFL"), (70.0, "(N")]


def _external(name: str) -> Path:
    path = EXTERNAL / name
    if not path.exists():
        pytest.skip(f"{path} is not present (set AUGFRAME_SHARED to the shared/ folder)")
    return path


def _registry():
    import augframe.data.plugin as sources
    from augframe.plugins import Registry

    reg = Registry()
    reg.register_module(sources, name="sources")
    return reg


@pytest.fixture()
def rhythm_db(tmp_path) -> Path:
    """Two 100 s one-channel records (r01, r02) with the rhythm changes above, in the MIT-BIH convention."""
    import wfdb

    for k, name in enumerate(("r01", "r02")):
        write_wfdb(tmp_path, name, synthetic_ecg(100.0, FS, seed=k), FS, ["ECG"])
        samples = np.array([int(t * FS) for t, _ in CHANGES])
        wfdb.wrann(name, "atr", samples, symbol=["+"] * len(CHANGES), aux_note=[a for _, a in CHANGES],
                   write_dir=str(tmp_path))
    return tmp_path


def test_episodes_run_to_the_next_change_or_the_end():
    eps = rhythm_episodes([300, 100, 900], ["(AFIB", "(N\x00", "(N "], 1000)
    assert [(e.start, e.end, e.rhythm) for e in eps] == [(100, 300, "(N"), (300, 900, "(AFIB"), (900, 1000, "(N")]


def test_windows_lie_wholly_inside_one_episode(rhythm_db):
    ext = read_external(WFDBRhythmSource(rhythm_db, lead_as="I"), preprocessing=CFG, classes=("N", "A"))
    b = ext.batch
    assert b.signals.shape[1:] == (1, 2500) and b.fs == 250.0 and b.leads == ("I",) and b.units == "mV"
    spans = {"N": [(3.0, 25.0), (70.0, 100.0)], "A": [(25.0, 57.0)]}  # the (AFL episode is not mapped
    for start, label in zip(b.meta["start_s"], b.labels):
        assert any(lo <= start and start + 10.0 <= hi for lo, hi in spans[b.class_names[label]]), (start, label)
    per_record = {r: sorted(b.meta["start_s"][b.meta["record"] == r].tolist()) for r in ("r01", "r02")}
    assert per_record["r01"] == pytest.approx([3.0, 13.0, 25.0, 35.0, 45.0, 70.0, 80.0, 90.0])
    assert set(b.meta["episode"]) == {f"r0{k}#e{e}" for k in (1, 2) for e in (0, 1, 3)}


def test_cap_per_record_and_class_is_a_seeded_draw(rhythm_db):
    def read(seed):
        return read_external(WFDBRhythmSource(rhythm_db, lead_as="I"), preprocessing=CFG, classes=("N", "A"),
                             name="rh", max_windows_per_record=2, seed=seed).batch

    a, b = read(0), read(0)
    assert a.ids == b.ids and len(a) == 8  # 2 records x 2 classes x 2
    for r in ("r01", "r02"):
        for y in (0, 1):
            assert ((a.meta["record"] == r) & (a.labels == y)).sum() == 2
    draws = {read(s).ids for s in range(6)}
    assert len(draws) > 1  # the choice depends on the seed (6 draws of 2 from 5 N windows x 3 A)


def test_one_class_labels_every_window_and_groups_pairs(rhythm_db):
    src = WFDBRhythmSource(rhythm_db, one_class="N", subjects="pairs", lead_as="II")
    ext = read_external(src, preprocessing=attrs.evolve(CFG, leads="II"), classes=("N", "A"), one_class="N")
    b = ext.batch
    assert ext.one_class == "N" and len(b) == 20 and set(b.labels) == {0}  # whole 100 s records, (AFIB too
    assert set(b.meta["patient_id"]) == {"r01"}  # r01 and r02 are one subject
    with pytest.raises(DataError, match="declared one-class 'A'"):
        read_external(WFDBRhythmSource(rhythm_db, lead_as="I"), preprocessing=CFG, classes=("N", "A"), one_class="A")


def test_missing_annotations_are_reported_not_raised(rhythm_db):
    (rhythm_db / "r02.atr").unlink()
    src = WFDBRhythmSource(rhythm_db, lead_as="I")
    ext = read_external(src, preprocessing=CFG, classes=("N", "A"))
    assert set(ext.batch.meta["record"]) == {"r01"}
    assert [p.kind for p in src.problems] == ["missing-file"]


def test_afpdb_one_class_pairs():
    root = _external("afpdb")
    src = WFDBRhythmSource(root, records_list=["n01", "n02", "n03"], one_class="N", subjects="pairs", lead_as="II")
    ext = read_external(src, preprocessing=attrs.evolve(CFG, leads="II"), classes=("N", "A"), one_class="N",
                        max_windows_per_record=4)
    b = ext.batch
    assert b.signals.shape == (12, 1, 2500) and b.leads == ("II",) and set(b.labels) == {0}
    assert dict(zip(b.meta["record"], b.meta["patient_id"])) == {"n01": "n01", "n02": "n01", "n03": "n03"}
    assert np.all(b.meta["start_s"] % 10.0 == 0) and b.meta["start_s"].max() < 1800.0


def test_aftdb_subjects_follow_the_headers():
    root = _external("aftdb")
    recs = ["learning-set/s01", "learning-set/t01", "test-set-b/b14", "test-set-a/a01", "test-set-a/a08",
            "learning-set/n01", "learning-set/s03", "test-set-b/b02"]
    src = WFDBRhythmSource(root, records_list=recs, one_class="A", subjects="aftdb", channel=1, lead_as="I")
    rows, problems = src.plan()
    subject = {r["record"]: r["patient"] for r in rows}
    assert not problems
    assert subject["learning-set/t01"] == subject["test-set-b/b14"] == subject["learning-set/s01"]
    assert subject["test-set-a/a08"] == subject["test-set-a/a01"] != subject["learning-set/n01"]
    assert subject["test-set-b/b02"] == subject["learning-set/s03"] != subject["learning-set/s01"]
    rec = src.read(rows[0])
    assert rec.fs == FS and rec.leads == ("I",) and rec.signal.shape == (1, 7680)


def _recipe(extra: str) -> str:
    return f"""
[data]
source = "demo"
classes = ["N", "A"]
[generator]
name = "g"
[generation]
directions = ["N->A"]
{extra}
"""


EXTERNAL_ENTRY = """
[[evaluation.external]]
name = "aftdb"
source = "wfdb-rhythm"
params = {{ root = "{root}", subjects = "aftdb" }}
one_class = "A"
max_windows_per_record = 6
preprocessing = {{ quality_threshold = 0.4 }}
"""


def test_recipe_external_entries_parse_and_print():
    second = EXTERNAL_ENTRY.format(root="y").replace('name = "aftdb"', 'name = "b"')
    r = R.loads(_recipe(EXTERNAL_ENTRY.format(root="x") + second))
    x = r.evaluation.external
    assert [e.name for e in x] == ["aftdb", "b"] and x[0].one_class == "A" and x[0].params["subjects"] == "aftdb"
    text = r.to_toml()
    assert text.count("[[evaluation.external]]") == 2 and R.loads(text) == r
    assert R.loads(_recipe("")).evaluation.external == ()


@pytest.mark.parametrize("edit, message", [
    (("one_class", "one_clas"), "unknown key evaluation.external[0].one_clas (did you mean 'one_class'?)"),
    (("one_class = \"A\"", "one_class = \"O\""), "evaluation.external[0].one_class = 'O' is not one of data.classes"),
    (("quality_threshold", "fs"), "evaluation.external[0].preprocessing.fs cannot be overridden"),
    (("max_windows_per_record = 6", "max_windows_per_record = 0"), "must be at least 1"),
    (("[[evaluation.external]]", "[evaluation.external]"), "evaluation.external must be an array of tables"),
])
def test_recipe_external_errors(edit, message):
    with pytest.raises(RecipeError) as err:
        R.loads(_recipe(EXTERNAL_ENTRY.format(root="x").replace(*edit, 1)))
    assert message in str(err.value)


def test_preprocessing_overrides_are_checked():
    config, strict = external_config(CFG.to_dict() | {"max_windows_per_record": 3, "allowed_fs": [300.0]},
                                     {"cleaning": "bandpass", "strict": True})
    assert config.cleaning == "bandpass" and strict and config.max_windows_per_record is None
    assert config.allowed_fs is None and config.fs == 250.0
    with pytest.raises(RecipeError, match=r"preprocessing.quality_treshold \(did you mean 'quality_threshold'"):
        external_config(CFG, {"quality_treshold": 0.3})


def test_load_external_sets_reads_like_the_run(rhythm_db):
    train = ECGBatch(np.random.default_rng(0).standard_normal((4, 1, 2500)).astype(np.float32), 250.0, ("I",),
                     labels=[0, 1, 0, 1], class_names=("N", "A"))
    norm = Normaliser(kind="zscore", params={"median_std": 1.0})
    run = RunData(train, info={"preprocessing": CFG.to_dict() | {"max_windows_per_record": 1},
                               "normaliser": norm.to_dict()})
    recipe = R.loads(_recipe(f"""
[[evaluation.external]]
name = "rh"
source = "wfdb-rhythm"
params = {{ root = "{rhythm_db}" }}
max_windows_per_record = 1
"""))
    (ext,) = load_external_sets(recipe, _registry(), run_data=run)
    b = ext.batch
    assert ext.name == "rh" and b.leads == ("I",) and b.units == "zscore" and len(b) == 4  # 2 records x 2 classes
    assert np.allclose(b.numpy().mean(-1), 0.0, atol=1e-4) and np.allclose(b.numpy().std(-1), 1.0, atol=1e-3)
    bad = RunData(ECGBatch(train.signals[:, :, :2000], 250.0, ("I",), labels=[0, 1, 0, 1], class_names=("N", "A")),
                  info=run.info)
    with pytest.raises(DataError, match="the run's data"):
        load_external_sets(recipe, _registry(), run_data=bad)
