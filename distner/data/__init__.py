"""MultiCoNER data: CoNLL files and corpora, vocabularies and encoding, a fit's encoded inputs."""
