"""augframe_leads: 12-lead consistency (Einthoven/Goldberger) as a filter and an evaluator."""
