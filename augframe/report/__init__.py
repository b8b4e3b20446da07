"""HTML + JSON reports (work in progress)."""
