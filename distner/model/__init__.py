"""The tagger: the BiLSTM network, its CRF, and the run folder (one save, one load)."""
