"""augframe plugin: the SSSD-ECG 12-lead generator (``sssd-ecg``)."""

from __future__ import annotations

import augframe


@augframe.hookimpl
def augframe_register_generators(register: augframe.Register) -> None:
    from augframe_sssd.generator import SSSDECGGenerator  # light: torch is imported inside its methods

    register("sssd-ecg", SSSDECGGenerator,
             description="SSSD-ECG: label-conditioned 12-lead diffusion with bidirectional S4D layers "
                         "(8 leads generated, III/aVR/aVL/aVF derived)")
