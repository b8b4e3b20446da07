"""augframe_diffecg plugin (work in progress)."""
