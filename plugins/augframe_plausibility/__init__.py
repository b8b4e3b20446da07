"""augframe_plausibility: the clinical plausibility validator and the near-copy (privacy) filter.

``from augframe_plausibility.validator import PlausibilityFilter`` and
``from augframe_plausibility.nearcopy import NearCopyFilter``; recipes reach them through the registry
as filters "plausibility" and "near-copy".
"""
