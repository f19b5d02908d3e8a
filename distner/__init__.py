"""distner: train, tune and report BiLSTM named-entity taggers on MultiCoNER II."""

__version__ = "0.1.0"

from distner import _moved

_moved.install()  # the flat layout's module paths, for studies it started (_moved.py)
