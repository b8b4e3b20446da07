"""The 8 leads SSSD-ECG generates; the 4 limb leads it derives come from :mod:`augframe.leads`.

Einthoven: III = II - I. Goldberger: aVR = -(I + II) / 2, aVL = I - II / 2, aVF = II - I / 2.
(The original SSSD-ECG code generates I, V1-V6 and aVF and keeps a non-standard order; we generate
I, II, V1-V6, the two independent limb leads, and return the standard order.)
"""

from __future__ import annotations

from augframe.errors import ValidationError
from augframe.leads import INDEPENDENT_LEADS, to_twelve_leads

__all__ = ["INDEPENDENT_LEADS", "independent_leads", "to_twelve_leads"]


def independent_leads(leads: tuple[str, ...], what: str) -> list[int]:
    """Positions of the 8 independent leads in ``leads``; a missing one raises naming all 8."""
    missing = [name for name in INDEPENDENT_LEADS if name not in leads]
    if missing:
        raise ValidationError(
            f"{what} has leads {list(leads)}; SSSD-ECG needs the independent leads "
            f"{list(INDEPENDENT_LEADS)} (missing {missing}); pass 12-lead or 8-lead ECGs"
        )
    return [leads.index(name) for name in INDEPENDENT_LEADS]
