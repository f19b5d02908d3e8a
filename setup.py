"""The packages of the wheel (everything else is in pyproject.toml): every subpackage of distner/,
found rather than listed (tests/test_wheel.py checks the wheel), and tune_spaces/ at the root, the
one copy of the search spaces, shipped inside as distner.tune_spaces so that an installed distner
finds its defaults from any folder."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["distner", "distner.*"]), "distner.tune_spaces"],
    package_dir={"distner.tune_spaces": "tune_spaces"},
)
