"""prepare_recipe_data: recipe tables -> cache -> patient-wise split -> normaliser fitted on train."""

from __future__ import annotations

import numpy as np
import pytest

from augframe.data.cinc2017 import CinC2017Source
from augframe.data.demo import DemoSource, demo_windows
from augframe.data.prepare import prepare_recipe_data
from augframe.errors import RecipeError
from augframe.windows import WindowDataset


def test_prepare_from_cinc_with_cache_split_and_normaliser(cinc2017_dir, tmp_path):
    src = CinC2017Source(cinc2017_dir, classes=("N", "A"), limit_per_class=8, seed=1)
    prep = {"leads": ["I"], "max_windows_per_record": 2, "normalise": "minmax", "cache_dir": str(tmp_path / "c")}
    split_file = tmp_path / "split.json"
    rd = prepare_recipe_data(src, preprocessing=prep, split={"k": 4, "fold": 1, "file": str(split_file)},
                             classes=("N", "A"), seed=3)
    assert isinstance(rd.train, WindowDataset) and isinstance(rd.test, WindowDataset)
    assert not set(rd.train.patient_ids) & set(rd.test.patient_ids)
    assert rd.train.units == "minmax" and rd.info["normaliser"]["kind"] == "minmax"
    train = rd.train.batch().signals
    assert train.min() == pytest.approx(-1.5, abs=1e-5) and train.max() == pytest.approx(1.5, abs=1e-5)
    assert split_file.exists() and rd.info["split"]["fold"] == 1
    # replay: a different seed with the saved split gives the same partition
    again = prepare_recipe_data(src, preprocessing=prep, split={"k": 4, "fold": 1, "file": str(split_file)},
                                classes=("N", "A"), seed=99)
    assert again.test.ids == rd.test.ids and again.fingerprint == rd.fingerprint


def test_prepare_demo_source_in_memory_and_as_read():
    rd = prepare_recipe_data(DemoSource(), preprocessing={"leads": "I", "cleaning": "none", "normalise": "zscore",
                                                          "cache": False},
                             split={"test_fraction": 0.2}, classes=("N", "A"), seed=0)
    assert len(rd.train) + len(rd.test) == len(demo_windows())
    assert np.allclose(rd.train.signals.std(-1), 1, atol=1e-3)
    ratio = [b.labels.mean() for b in (rd.train, rd.test)]
    assert abs(ratio[0] - ratio[1]) < 0.1  # stratified
    raw = prepare_recipe_data(DemoSource(classes=("A",)), preprocessing={}, split={}, classes=None, seed=0)
    assert raw.test is None and raw.train.class_names == ("A",) and len(raw.train) == 200


def test_prepare_names_bad_keys():
    for prep, split, match in (({"windows": 10}, {}, "data.preprocessing.windows"),
                               ({"leads": "I"}, {"fold": 9}, "data.split.fold"),
                               ({"leads": "I"}, {"k": 3, "fold": 3}, "data.split.fold"),
                               ({"leads": "I"}, {"test_fraction": 0.2, "k": 3}, "either k or test_fraction"),
                               ({"leads": "I"}, {"kfold": 3}, "data.split.kfold"),
                               ({"leads": "I", "normalise": "l2"}, {}, "normalise"),
                               ({"cleaning": "notch"}, {}, "data.preprocessing: preprocess.cleaning")):
        with pytest.raises(RecipeError, match=match):
            prepare_recipe_data(DemoSource(), preprocessing=prep, split=split, classes=("N", "A"), seed=0)
