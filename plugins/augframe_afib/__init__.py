"""augframe_afib: AF classifiers (AFibResLSTM, torch-ecg ECG_CRNN) and the evaluators built on them.

Registered through :mod:`augframe_afib.plugin`: classifiers ``afib-reslstm`` and ``ecg-crnn``;
evaluators ``three-way`` (A/B/C/D training with TOST), ``tstr`` and ``fidelity``. See
docs/afib-evaluator.md.
"""
