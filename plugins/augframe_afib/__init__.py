"""augframe_afib plugin (work in progress)."""
