"""One fit: the Lightning fit that writes a run folder, the lean loop packed trials use, optimisers,
checkpoint timing.
"""
