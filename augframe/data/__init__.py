"""Real ECG data layer: readers, preprocessing, splits, memory-mapped cache (work in progress)."""
