"""Scores (entity-level and padded-token) and the evaluate/predict steps."""
