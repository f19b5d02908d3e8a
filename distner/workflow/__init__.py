"""Steps over cells: retrain (seeds, final model) and the pipeline (tune -> retrain -> report)."""
