"""augframe_leads plugin (work in progress)."""
