"""augframe_afib: AF classifiers (AFibResLSTM, torch-ecg ECG_CRNN) and the evaluators built on them.

Registers classifiers "afib-reslstm" and "ecg-crnn" and evaluators "three-way", "tstr" and
"fidelity". Everything heavy (torch models, torch-ecg, scikit-learn) is imported inside the
factories, so loading the plugin is cheap.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import augframe


class _Lazy:
    """A factory that imports its target on first use; ``inspect.signature`` sees the target's parameters
    (so the registry names a wrong parameter and callers can see what a classifier accepts)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def _resolve(self) -> Any:
        module, _, attr = self.target.rpartition(".")
        return getattr(importlib.import_module(module), attr)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self._resolve())

    def __call__(self, **params: Any) -> Any:
        return self._resolve()(**params)

    def __repr__(self) -> str:
        return f"<lazy factory {self.target}>"


_afib_reslstm = _Lazy("augframe_afib.classifiers.make_afib_reslstm")
_ecg_crnn = _Lazy("augframe_afib.classifiers.make_ecg_crnn")
_three_way = _Lazy("augframe_afib.protocol.ThreeWayEvaluator")
_tstr = _Lazy("augframe_afib.tstr.TSTREvaluator")
_fidelity = _Lazy("augframe_afib.fidelity.FidelityEvaluator")


@augframe.hookimpl
def augframe_register_classifiers(register: Any) -> None:
    register("afib-reslstm", _afib_reslstm,
             description="AFibResLSTM (reference AF classifier, 8.3 M params at width 1); params width, depth, "
                         "class_names, in_channels, checkpoint, seed")
    register("ecg-crnn", _ecg_crnn,
             description="torch-ecg ECG_CRNN, ResNet backbone + LSTM preset; params class_names, n_leads, fs, width, "
                         "checkpoint, seed")


@augframe.hookimpl
def augframe_register_evaluators(register: Any) -> None:
    register("three-way", _three_way,
             description="A real / B synthetic / C mixed (/ D classical augmentation) training with TOST equivalence")
    register("tstr", _tstr, description="train on synthetic, test on real (TSTR), the reverse (TRTS) and TRTR")
    register("fidelity", _fidelity,
             description="MSE/PSNR/SSIM/Pearson vs source, HR/RR distributions, Frechet/MMD and judge flip rate")
