"""augframe_sssd plugin (work in progress)."""
