"""The 8 leads SSSD-ECG generates and the 4 limb leads it derives from them.

Einthoven: III = II - I. Goldberger: aVR = -(I + II) / 2, aVL = I - II / 2, aVF = II - I / 2.
(The original SSSD-ECG code generates I, V1-V6 and aVF and keeps a non-standard order; we generate
I, II, V1-V6, the two independent limb leads, and return the standard order.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from augframe.errors import ValidationError
from augframe.signals import STANDARD_LEADS

if TYPE_CHECKING:  # pragma: no cover
    import torch

INDEPENDENT_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def independent_leads(leads: tuple[str, ...], what: str) -> list[int]:
    """Positions of the 8 independent leads in ``leads``; a missing one raises naming all 8."""
    missing = [name for name in INDEPENDENT_LEADS if name not in leads]
    if missing:
        raise ValidationError(
            f"{what} has leads {list(leads)}; SSSD-ECG needs the independent leads "
            f"{list(INDEPENDENT_LEADS)} (missing {missing}); pass 12-lead or 8-lead ECGs"
        )
    return [leads.index(name) for name in INDEPENDENT_LEADS]


def to_twelve_leads(x8: "torch.Tensor") -> "torch.Tensor":
    """``[N, 8, L]`` in INDEPENDENT_LEADS order -> ``[N, 12, L]`` in STANDARD_LEADS order."""
    import torch

    if x8.shape[1] != len(INDEPENDENT_LEADS):
        raise ValidationError(f"expected {len(INDEPENDENT_LEADS)} independent leads, got {x8.shape[1]}")
    i, ii, chest = x8[:, 0], x8[:, 1], x8[:, 2:]
    limb = torch.stack([i, ii, ii - i, -0.5 * (i + ii), i - 0.5 * ii, ii - 0.5 * i], dim=1)
    return torch.cat([limb, chest], dim=1)  # the order of _DERIVED_ORDER, i.e. STANDARD_LEADS


_DERIVED_ORDER = ("I", "II", "III", "aVR", "aVL", "aVF", *INDEPENDENT_LEADS[2:])
if _DERIVED_ORDER != STANDARD_LEADS:  # pragma: no cover - guards the stacking order above
    raise ImportError("augframe.signals.STANDARD_LEADS changed order; update augframe_sssd.leads")
