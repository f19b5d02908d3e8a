"""Everything that knows Ray and Optuna: a study's driver, its trainable, packed trials, the searcher,
the Ray runtime, cluster files, a study's output files.
"""
