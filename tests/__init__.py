"""distner's tests: tests/<package>/test_<module>.py mirrors distner/; conftest.py holds the fixtures."""

import os

# In several test processes (`-n 2`), each gets its share of the cores as torch (OpenMP) threads,
# it and every process it starts, set here because this runs before anything loads torch: with
# torch's default (every core in every process) the extra threads spin-wait on each other. It
# matters most on a busy machine: beside a long study, the in-process fitting tests took 390 s
# with the default and 138 s with one thread each. In one process (`-m unit`) torch keeps its
# default, which is quicker there (45 s against 55 s). A study's trials set their own.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))
