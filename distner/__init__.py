"""distner: train, tune and report BiLSTM named-entity taggers on MultiCoNER II."""

__version__ = "0.1.0"
