"""Plumbing with no domain word and no torch or Ray at import: errors, atomic files, paths, locks, the
signal policy, manifests, the fences around private Ray/Optuna use, flags, the optional extra's
check.
"""
