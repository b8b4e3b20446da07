"""The HTML/JSON report: self-contained, strict JSON, ECG paper grid, atomic writes, Chromium render."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from augframe.errors import ValidationError
from augframe.protocols import EvaluationResult, Figure, Table
from augframe.report import find_chromium, screenshot, write_report
from augframe.report.svg import PX_PER_MM, ecg_strips, histogram, interval_plot
from augframe.signals import ECGBatch


def _results() -> list[EvaluationResult]:
    rng = np.random.default_rng(0)
    eq = interval_plot([("A - C (accuracy, folds)", 0.0057, -0.0016, 0.0130, True),
                        ("A - B (accuracy, folds)", 0.097, 0.07, 0.12, False)], margin=0.02)
    return [
        EvaluationResult(
            name="three-way", metrics={"A.accuracy.mean": 0.9563, "tost.A_vs_C.accuracy.p": 0.0071,
                                       "ttest.A_vs_B.accuracy.p": float("nan")},
            tables={"summary": Table(["condition", "accuracy"], [["A", "95.63 +- 0.33"], ["C", "95.05 +- 0.50"]],
                                     caption="mean +- SD")},
            figures={"equivalence": eq}, notes=("shared test set: df = 4 overstates certainty",),
            scale="5 folds, T = 18,681", details={
                "title": "Real / synthetic / mixed training",
                "headline": [{"label": "C vs A", "value": "equivalent", "status": "good", "note": "p = 0.0071"}]}),
        EvaluationResult(
            name="fidelity", metrics={"pair.psnr_db.mean": 12.58},
            tables={"pairwise": Table(["measure", "mean"], [["PSNR (dB)", 12.58], ["SSIM-1D", 0.471]])},
            details={"distributions": {"heart_rate_bpm": {"real": rng.normal(75, 10, 200).tolist(),
                                                          "synthetic": rng.normal(82, 14, 150).tolist()},
                                       "psnr_db": rng.normal(12.6, 2.1, 300).tolist()}}),
    ]


def _pairs(fs: float = 250.0) -> tuple[ECGBatch, ECGBatch]:
    t = np.arange(int(10 * fs)) / fs
    beat = lambda c: sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in c)  # noqa: E731
    real = np.stack([beat(np.arange(0.4, 10, 0.8)), beat(np.arange(0.3, 10, 0.6))])[:, None, :]
    syn = real + 0.02 * np.sin(2 * np.pi * 7 * t)
    kw = dict(fs=fs, leads=("II",), class_names=("N", "A"))
    return (ECGBatch(real.astype(np.float32), labels=[0, 1], ids=["r0", "r1"], **kw),
            ECGBatch(syn.astype(np.float32), labels=[1, 0], ids=["s0", "s1"], **kw))


def test_report_is_self_contained_and_json_is_strict(tmp_path):
    out = write_report(_results(), tmp_path / "run", pairs=_pairs(), meta={"seed": 42, "recipe": "afib-cinc"})
    page = out.read_text()
    assert out.name == "report.html" and page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and not re.search(r"(src|href)=['\"](https?:)?//", page)
    assert "<link" not in page and "@import" not in page
    for text in ("Real / synthetic / mixed training", "equivalent", "df = 4 overstates certainty", "Run metadata",
                 "afib-cinc", "25 mm/s", "Real · N", "Synthetic · A", "heart_rate_bpm", "torch"):
        assert text in page, text
    data = json.loads((tmp_path / "run" / "report.json").read_text())  # strict: NaN became null
    assert data["format"] == "augframe-report-1"
    assert data["results"][0]["metrics"]["ttest.A_vs_B.accuracy.p"] is None
    assert data["meta"]["seed"] == 42 and len(data["pairs"]) == 2
    assert not list((tmp_path / "run").glob(".*tmp*"))  # atomic writes leave no temp files


def test_ecg_strip_is_drawn_on_standard_paper():
    fig = ecg_strips([{"signal": np.zeros(2500), "label": "flat"}], fs=250.0)
    svg = fig.data
    width = float(re.search(r"width='(\d+)'", svg).group(1))
    assert width == pytest.approx((250 + 10) * PX_PER_MM, abs=1)  # 10 s at 25 mm/s, plus the calibration area
    paths = re.findall(r"<path d='([^']*)' stroke='(#[0-9a-f]+)' stroke-width='([\d.]+)'", svg)
    fine = [p for p in paths if p[2] == "0.5"][0][0]
    bold = [p for p in paths if p[2] == "1"][0][0]
    xs_fine = sorted({float(v) for v in re.findall(r"M([\d.]+) 0\.00V", fine)})
    xs_bold = sorted({float(v) for v in re.findall(r"M([\d.]+) 0\.00V", bold)})
    assert np.allclose(np.diff(xs_bold), 5 * PX_PER_MM)  # bold lines every 5 mm
    assert np.diff(sorted(xs_fine + xs_bold)).max() == pytest.approx(PX_PER_MM, abs=0.02)  # fine lines every 1 mm
    # the 1 mV calibration pulse is 10 mm tall
    pulse = re.search(r"<path d='M[\d.]+ ([\d.]+)H[\d.]+V([\d.]+)H", svg)
    assert float(pulse.group(1)) - float(pulse.group(2)) == pytest.approx(10 * PX_PER_MM, abs=0.1)


def test_figures_and_bad_input():
    h = histogram({"real": [1, 2, 3, 4], "synthetic": [2, 3, 3, float("nan")]}, xlabel="bpm")
    assert isinstance(h, Figure) and "n=3" in h.data and "n=4" in h.data
    with pytest.raises(ValidationError, match="EvaluationResult"):
        write_report([{"name": "x"}], "/nonexistent/never")
    real, syn = _pairs()
    with pytest.raises(ValidationError, match="as many real"):
        write_report(_results(), "/nonexistent/never", pairs=(real, syn.select([0])))


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    Image = pytest.importorskip("PIL.Image")

    html = write_report(_results(), tmp_path, pairs=_pairs())
    png = screenshot(html, tmp_path / "report.png", width=1100, height=1400)
    img = np.asarray(Image.open(png).convert("RGB")).astype(float)
    assert img.shape == (1400, 1100, 3)
    assert img.std() > 20  # a rendered page, not a blank one
    # the header's accent rule (#8c1d2f) is drawn: the CSS was applied
    assert np.any(np.all(np.abs(img - np.array([140, 29, 47])) < 12, axis=-1))
