"""augframe_diffstylets plugin (work in progress)."""
