"""The limb-lead relations every 12-lead ECG obeys (Einthoven's law, Goldberger's augmented leads).

Of the six limb leads only two are independent: III, aVR, aVL and aVF follow from I and II. A
generator that makes 8 independent leads (I, II, V1-V6) derives the rest here; a filter checks a
candidate against the same table, so both use one definition.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from augframe.errors import ValidationError
from augframe.signals import STANDARD_LEADS, ECGBatch

#: Independent leads a 12-lead generator has to make.
INDEPENDENT_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")

#: derived lead -> (weight of I, weight of II)
RELATIONS: dict[str, tuple[float, float]] = {
    "III": (-1.0, 1.0),   # Einthoven: III = II - I
    "aVR": (-0.5, -0.5),  # Goldberger: aVR = -(I + II) / 2
    "aVL": (1.0, -0.5),   # aVL = I - II / 2
    "aVF": (-0.5, 1.0),   # aVF = II - I / 2
}


def derive(lead_i: Any, lead_ii: Any, name: str) -> Any:
    """The derived limb lead ``name`` from leads I and II (numpy arrays or torch tensors)."""
    if name not in RELATIONS:
        raise ValidationError(f"lead {name!r} is not derived from I and II; derived leads: {list(RELATIONS)}")
    a, b = RELATIONS[name]
    return a * lead_i + b * lead_ii


def to_twelve_leads(x: Any) -> Any:
    """``[N, 8, S]`` in INDEPENDENT_LEADS order -> ``[N, 12, S]`` in STANDARD_LEADS order."""
    if x.shape[1] != len(INDEPENDENT_LEADS):
        raise ValidationError(
            f"expected {len(INDEPENDENT_LEADS)} independent leads {INDEPENDENT_LEADS}, got {x.shape[1]}"
        )
    by_name = {name: x[:, k] for k, name in enumerate(INDEPENDENT_LEADS)}
    for name in RELATIONS:
        by_name[name] = derive(by_name["I"], by_name["II"], name)
    parts = [by_name[name] for name in STANDARD_LEADS]
    if type(x).__module__.startswith("torch"):
        import torch

        return torch.stack(parts, dim=1)
    return np.stack(parts, axis=1)


def residuals(batch: ECGBatch) -> dict[str, np.ndarray]:
    """Per-sample RMS of (lead - relation) / RMS of the limb leads, for each derived lead present."""
    if "I" not in batch.leads or "II" not in batch.leads:
        raise ValidationError(f"lead relations need leads I and II; this batch has {list(batch.leads)}")
    x = batch.numpy().astype(np.float64)
    lead = {name: x[:, batch.leads.index(name)] for name in batch.leads}
    scale = np.sqrt(np.mean(lead["I"] ** 2 + lead["II"] ** 2, axis=-1) / 2) + 1e-8
    return {
        name: np.sqrt(np.mean((lead[name] - derive(lead["I"], lead["II"], name)) ** 2, axis=-1)) / scale
        for name in RELATIONS if name in lead
    }
