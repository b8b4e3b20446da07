"""The style bank: style vectors of real labelled windows, and the style a generated sample is given.

``style_source`` says where a transfer's style comes from: ``self`` (the source's own, the reference's
code), ``reference`` (one real ECG of the target class, chosen by the sample's seed) or ``prototype``
(the mean style of the target class). The bank holds up to ``per_class`` training windows' styles per
class, so a generator can serve ``reference`` and ``prototype`` without the training data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from augframe.errors import ValidationError
from augframe.seeding import Stream, numpy_rng
from augframe_diffstylets.model import DiffStyleTS
from augframe_diffstylets.normalise import Normaliser

StyleBank = tuple[torch.Tensor, torch.Tensor]  # (styles [M, style_dim], class index [M]) on the device


@torch.inference_mode()
def build(model: DiffStyleTS, normaliser: Normaliser, data: Any, *, per_class: int, seed: int,
          micro_batch: int, device: Any) -> StyleBank:
    """Styles of up to ``per_class`` seeded windows of each class of ``data`` (a WindowDataset)."""
    labels = np.asarray(data.labels)
    rng = numpy_rng(seed, Stream.DIFFSTYLETS_STYLE_BANK)
    idx = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                          for c in range(model.cfg.num_classes)]).astype(np.int64)
    styles = []
    for s in range(0, len(idx), micro_batch):
        x = torch.from_numpy(np.stack([np.asarray(data[int(i)][0]) for i in idx[s:s + micro_batch]]))
        styles.append(model.style_encoder(normaliser.forward(x.to(device).float()))[0].float())
    return torch.cat(styles), torch.as_tensor(labels[idx], device=device)


def pick(bank: StyleBank, labels: torch.Tensor, seeds: np.ndarray, source: str,
         class_names: tuple[str, ...]) -> torch.Tensor:
    """One style per sample of class ``labels[i]``: a bank row chosen by ``seeds[i]`` (``reference``),
    else the class mean (``prototype``, and ``self`` when there is no source to take it from)."""
    styles, bank_labels = bank
    out = torch.empty(len(labels), styles.shape[1], device=styles.device)
    seeds_t = torch.as_tensor(seeds, device=styles.device)
    for c in labels.unique().tolist():
        rows = styles[bank_labels == c]
        if len(rows) == 0:
            raise ValidationError(f"the style bank has no ECG of class {class_names[c]!r}")
        sel = labels == c
        out[sel] = rows[seeds_t[sel] % len(rows)] if source == "reference" else rows.mean(0)
    return out
