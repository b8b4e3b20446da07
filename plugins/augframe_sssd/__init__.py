"""augframe_sssd: the SSSD-ECG generator (Alcaraz & Strodthoff 2023) as an augframe plugin."""
