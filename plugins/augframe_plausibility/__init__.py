"""augframe_plausibility plugin (work in progress)."""
