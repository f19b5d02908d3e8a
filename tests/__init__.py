"""distner's tests: tests/<package>/test_<module>.py mirrors distner/; conftest.py holds the fixtures."""

import os

# One torch (OpenMP) thread per test process and per process it starts, set here because this runs
# before conftest.py or any test module loads torch: the tests' fits are tiny, and `-n 2` runs two
# test processes on the 2 cores, whose second threads would only spin-wait on each other. It
# matters most on a busy machine: beside a long study, the in-process fitting tests took 390 s with
# torch's default and 138 s with one thread. A study's trials still set their own (`cpus_per_trial`).
os.environ.setdefault("OMP_NUM_THREADS", "1")
