"""Classifier factories the plugin registers: "afib-reslstm" (the reference) and "ecg-crnn" (torch-ecg).

Both satisfy ``augframe.protocols.Classifier``: ``forward(x) -> logits``, ``embed(x)``,
``class_names``, and z-score each ECG inside ``forward``. Other plugins (e.g. a generator's
flip loss) and the evaluators build them through the registry by name.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from augframe.checkpoint import load_weights, save_weights
from augframe.errors import CheckpointError, ValidationError
from augframe.paths import resolve

from augframe_afib.reslstm import AFibResLSTM, ResLSTMConfig, load_reference_state, load_state_checked, zscore


def make_afib_reslstm(
    width: float = 1.0, depth: Sequence[int] | None = None, class_names: Sequence[str] = ("N", "A"),
    in_channels: int = 1, checkpoint: str | Path | None = None, seed: int = 0, normalize: bool = True,
    attention_dropout: float | None = None,
) -> AFibResLSTM:
    """AFibResLSTM at ``width`` x the paper's channels (1.0 = 8,310,658 parameters).

    ``depth`` overrides the ResNet block counts (paper: 3, 4, 6, 3); ``checkpoint`` loads our
    ``.safetensors`` (written by :func:`save_afib_reslstm`; ``pretrained:NAME`` for a shipped one,
    e.g. ``pretrained:afib-reslstm-w025-cinc2017``), or a reference ``.pth``/``.pt``
    (``model_state_dict`` or ``state_dict`` inside, or a bare state dict, read with
    ``weights_only=True``); ``seed`` fixes the initial weights when no checkpoint is given; ``attention_dropout``
    (default: the reference's 0.3) is a training-time knob that costs nothing at inference.
    """
    cfg = ResLSTMConfig.scaled(width, depth=depth, in_channels=in_channels, num_classes=len(class_names),
                               attention_dropout=attention_dropout)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AFibResLSTM(cfg, class_names=class_names, normalize=normalize)
    if checkpoint is not None:
        path = resolve(checkpoint)
        if path.suffix == ".safetensors":
            state, saved = load_weights(path)
            _check_saved_config(saved, _config(width, depth, class_names, in_channels), path)
        else:
            state = load_reference_state(path)
        load_state_checked(model, state, str(checkpoint))
    return model


def _config(width: float, depth: Sequence[int] | None, class_names: Sequence[str], in_channels: int) -> dict[str, Any]:
    return {"classifier": "afib-reslstm", "width": float(width), "depth": None if depth is None else list(depth),
            "class_names": list(class_names), "in_channels": int(in_channels)}


def _check_saved_config(saved: dict[str, Any], given: dict[str, Any], path: Path) -> None:
    wrong = [f"{k}={given[k]!r} (checkpoint: {saved.get(k)!r})" for k in given if saved.get(k) != given[k]]
    if wrong:
        raise CheckpointError(f"AFibResLSTM checkpoint {path} was saved with other settings: {', '.join(wrong)}; "
                              "pass the checkpoint's settings")


def save_afib_reslstm(path: str | Path, model: AFibResLSTM, width: float, depth: Sequence[int] | None = None,
                      in_channels: int = 1) -> str:
    """Write ``model`` as safetensors with the factory settings that rebuild it; returns the SHA-256."""
    cfg = _config(width, depth, model.class_names, in_channels)
    return save_weights(path, model.state_dict(), cfg)


class ECGCRNNClassifier(nn.Module):
    """torch-ecg's ECG_CRNN (ResNet backbone "resnet_nature_comm" + its bidirectional LSTM preset).

    ``width`` scales the ResNet filters and LSTM hidden sizes (1.0 = torch-ecg's preset).
    """

    def __init__(self, class_names: Sequence[str] = ("N", "A"), n_leads: int = 1, fs: float = 250.0,
                 width: float = 1.0) -> None:
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch_ecg.model_configs import ECG_CRNN_CONFIG
            from torch_ecg.model_configs.cnn.resnet import resnet_nature_comm
            from torch_ecg.models import ECG_CRNN
            from torch_ecg.utils import adjust_cnn_filter_lengths
        if width <= 0:
            raise ValidationError(f"ecg-crnn width={width} must be positive")
        cfg = deepcopy(ECG_CRNN_CONFIG)
        cfg.fs = int(round(fs))
        backbone = adjust_cnn_filter_lengths(deepcopy(resnet_nature_comm), cfg.fs)
        backbone.num_filters = [max(4, int(round(c * width))) for c in backbone.num_filters]
        cfg.cnn.name = "resnet_nature_comm"
        cfg.cnn.resnet_nature_comm = backbone
        cfg.rnn.name = "lstm"
        cfg.rnn.lstm.hidden_sizes = [max(4, int(round(h * width))) for h in cfg.rnn.lstm.hidden_sizes]
        self.class_names = tuple(class_names)
        self.crnn = ECG_CRNN(list(self.class_names), n_leads, cfg)
        self.n_leads = n_leads

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != self.n_leads:
            raise ValidationError(f"ecg-crnn expects [N, {self.n_leads}, samples]; got {tuple(x.shape)}")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features (the classifier head's input)."""
        self._check(x)
        f = self.crnn.extract_features(zscore(x))
        return self.crnn.pool_rearrange(self.crnn.pool(f))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.crnn.clf(self.embed(x))


def make_ecg_crnn(class_names: Sequence[str] = ("N", "A"), n_leads: int = 1, fs: float = 250.0,
                  width: float = 1.0, checkpoint: str | Path | None = None, seed: int = 0) -> ECGCRNNClassifier:
    """torch-ecg ECG_CRNN (ResNet + LSTM) for ``fs`` Hz input; ``checkpoint`` is a state dict file."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ECGCRNNClassifier(class_names, n_leads, fs, width)
    if checkpoint is not None:
        state = load_reference_state(checkpoint)
        load_state_checked(model, state, str(checkpoint))
    return model


CLASSIFIERS: dict[str, Any] = {"afib-reslstm": make_afib_reslstm, "ecg-crnn": make_ecg_crnn}
