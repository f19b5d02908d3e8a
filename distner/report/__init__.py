"""Reports from files only (no Ray, no torch): report.md, report.json, figures, tables, TensorBoard
over runs.
"""
