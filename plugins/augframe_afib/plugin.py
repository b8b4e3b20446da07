"""augframe_afib: AF classifiers (AFibResLSTM, torch-ecg ECG_CRNN) and the evaluators built on them.

Registers classifiers "afib-reslstm", "ecg-crnn" and "rr-features" and evaluators "three-way",
"tstr", "fidelity", "rhythm" and "augmentation-curve". Everything heavy (torch models, torch-ecg,
scikit-learn) is imported inside the factories, so loading the plugin is cheap.
"""

from __future__ import annotations


import augframe
from augframe.plugins import lazy


_afib_reslstm = lazy("augframe_afib.classifiers.make_afib_reslstm")
_ecg_crnn = lazy("augframe_afib.classifiers.make_ecg_crnn")
_rr_features = lazy("augframe_afib.rrfeatures.make_rr_features")
_three_way = lazy("augframe_afib.protocol.ThreeWayEvaluator")
_tstr = lazy("augframe_afib.tstr.TSTREvaluator")
_fidelity = lazy("augframe_afib.fidelity.FidelityEvaluator")
_rhythm = lazy("augframe_afib.rhythm_eval.RhythmEvaluator")
_curve = lazy("augframe_afib.curve.AugmentationCurveEvaluator")


@augframe.hookimpl
def augframe_register_classifiers(register: augframe.Register) -> None:
    register("afib-reslstm", _afib_reslstm,
             description="AFibResLSTM (reference AF classifier, 8.3 M params at width 1); params width, depth, "
                         "class_names, in_channels, checkpoint, seed")
    register("ecg-crnn", _ecg_crnn,
             description="torch-ecg ECG_CRNN, ResNet backbone + LSTM preset; params class_names, n_leads, fs, width, "
                         "checkpoint, seed")
    register("rr-features", _rr_features,
             description="RR-interval irregularity features (wfdb XQRS beats) + logistic regression, fitted with "
                         "model.fit; params class_names, fs, detector, checkpoint, C, seed")


@augframe.hookimpl
def augframe_register_evaluators(register: augframe.Register) -> None:
    register("three-way", _three_way,
             description="A real / B synthetic / C mixed (/ D classical augmentation) training with TOST equivalence")
    register("tstr", _tstr, description="train on synthetic, test on real (TSTR), the reverse (TRTS) and TRTR")
    register("fidelity", _fidelity,
             description="MSE/PSNR/SSIM/Pearson vs source, HR/RR distributions, Frechet/MMD and judge flip rate")
    register("rhythm", _rhythm,
             description="per class: RR CV/RMSSD/heart-rate KS vs real, AF-threshold rate, QRS amplitude vs source, "
                         "P-wave presence, match verdicts (wfdb XQRS beats)")
    register("augmentation-curve", _curve,
             description="real / oversampled / classical / synthetic training vs the real minority fraction, "
                         "paired across seeds")
