"""A corpus encoded for one config (`prepare`, `EncodedCorpus`; model/build.py builds the network
from it): what every way of training shares, without Lightning, so that packed trials
(train/engine.py) load without it. Importing Lightning costs seconds, and more where `transformers` is
installed (torchmetrics then imports it): on the GPU machine it was most of a packer's 11 s start.

`prepare` is the one step of a fit that enters e5's modules (distner/pretrained/): the features
of the splits, the word-piece vectors, the trained layers' starting weights and which model file
gave them are all in the `EncodedCorpus` it returns; the model, the run folder and the scoring of
dev take them from there. (The test split's features are read when it is scored: it can be larger
than train, and a study never reads it.)

`build_features` is `distner features`: a language's splits read and their feature cache files
built ahead.

Reads: a `Corpus`, a `RunConfig`, vectors files and the encoder's feature cache when a config asks.
Writes: nothing (`build_features`: the feature cache).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from distner.config import ModelConfig, RunConfig
from distner.core.errors import DistnerError
from distner.data.conll import Corpus, Sentence
from distner.data.vocab import UNK_ID, Encoded, Vocab, encode, read_vectors
from distner.labels import tag_set
from distner.options import FeaturesOptions
from distner.pretrained.e5 import model_info, word_vectors
from distner.pretrained.encoder import trainable_layers
from distner.pretrained.features import Features

# Training steps between checks that the loss is finite: a check reads a value from the device and
# so waits for it; once per N steps keeps the GPU queue full and still stops a divergence early.
FINITE_CHECK_EVERY = 50


def finite_weights(model: torch.nn.Module) -> bool:
    """Whether every weight is finite (one read from the device). Checked after each training
    epoch: the last step can leave NaN weights behind a finite loss, and they would be kept."""
    return bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all())


@dataclass(frozen=True)
class EncodedCorpus:
    """A corpus encoded for one config: vocabularies, tag set, tensors, pretrained vectors."""

    vocab: Vocab
    tags: tuple[str, ...]
    train: Encoded
    dev: Encoded
    dev_sentences: list[Sentence]
    chars: Vocab | None = None
    vectors: tuple[list[int], torch.Tensor] | None = None  # (vocab ids, their vectors)
    dev_features: list[Features] | None = None  # of every non-empty dev sentence (for scoring)
    encoder_top: torch.nn.ModuleList | None = None  # encoder_train_layers' start: e5's top layers
    provenance: dict[str, str] | None = None  # the e5 model file behind vectors or features


def _training_sample(corpus: Corpus, cfg: RunConfig) -> tuple[list[Sentence], list[Sentence], Sequence[int]]:
    """The whole training split(s), their non-empty sentences, and which of those a config trains on."""
    t = cfg.train
    whole = corpus.training_sentences(t.extra_langs)
    # A bare `# id` header reads as a sentence without tokens: nothing to learn or validate on.
    train = [s for s in whole if len(s)]
    pick: Sequence[int] = range(len(train))
    if t.max_train_sentences and t.max_train_sentences < len(train):
        # indices drawn as `sample(train, k)` draws sentences: the same sample as before
        pick = random.Random(t.seed).sample(pick, t.max_train_sentences)
    return whole, train, pick


def check_vocabulary(corpus: Corpus, cfg: RunConfig) -> None:
    """The word vocabulary `prepare` would build holds words (`min_freq`): said before a run starts."""
    _, train, pick = _training_sample(corpus, cfg)
    Vocab.build((train[i] for i in pick), cfg.train.min_freq)


def prepare(corpus: Corpus, cfg: RunConfig) -> EncodedCorpus:
    t, m = cfg.train, cfg.model
    whole, train, pick = _training_sample(corpus, cfg)
    dev = [s for s in corpus.dev if len(s)]
    dev = dev[: t.max_eval_sentences] if t.max_eval_sentences else dev
    train_feats = dev_feats = all_dev_feats = None
    if m.encoder_features:  # whole splits are cached, so every sample and trial reads one file
        feats = split_features(whole, m)
        train_feats = [feats[i] for i in pick]
        all_dev_feats = split_features(corpus.dev, m)
        dev_feats = all_dev_feats[: len(dev)]
    train = [train[i] for i in pick]
    vectors = None
    if m.pretrained_vectors:
        words, vecs = read_vectors(m.pretrained_vectors)
        if vecs.shape[1] != m.embedding_dim:
            raise DistnerError(
                f"{m.pretrained_vectors}: vectors have {vecs.shape[1]} dimensions but "
                f"embedding_dim is {m.embedding_dim}; set embedding_dim={vecs.shape[1]}"
            )
        vocab = Vocab.build(train, t.min_freq, extra=words)  # vector words reach dev/test OOVs
        ids = vocab.lookup(words)
        keep = [k for k, i in enumerate(ids) if i > UNK_ID]  # words the vocabulary holds
        vectors = ([ids[k] for k in keep], vecs[keep])
    elif m.subword_vectors:
        # Train words, then dev words: every row starts as its word's pooled piece vectors, so the
        # validation that picks the best epoch (and that tuning reports) sees dev's unseen words as
        # test will see its own (evaluation/evaluate.py appends their vectors at evaluation); test is
        # never read.
        vocab = Vocab.build(train, t.min_freq, extra=(w for s in dev for w in s.tokens))
        rows = list(range(UNK_ID + 1, len(vocab)))
        vectors = (rows, word_vectors(vocab.itos[UNK_ID + 1 :], m.subword_pool))
    else:
        vocab = Vocab.build(train, t.min_freq)
    chars = Vocab.build_chars(train) if m.char_features else None
    tags = tag_set(corpus.granularity)
    return EncodedCorpus(
        vocab,
        tags,
        encode(train, vocab, tags, t.seq_len or None, chars, train_feats),
        encode(dev, vocab, tags, None, chars, dev_feats),
        dev,
        chars,
        vectors,
        all_dev_feats,
        trainable_layers(m.encoder_train_layers) if m.encoder_train_layers else None,
        model_info() if m.subword_vectors or m.encoder_features else None,
    )


def split_features(sentences: Sequence[Sentence], cfg: ModelConfig) -> list[Features]:
    """Encoder features of a corpus split's non-empty sentences, from the on-disk cache."""
    from distner.pretrained.cache import cached_features
    from distner.pretrained.features import split_tokens

    return cached_features(split_tokens(sentences), cfg)


def build_features(opts: FeaturesOptions) -> list[tuple[str, str, Path, int]]:
    """`distner features`: the e5 feature cache files of a language's splits (opts.splits), for
    every spec a space (opts.space) or a config (opts.config and overrides) asks for, built where
    missing: (language, split, file, bytes) for each."""
    from distner.config import load_config
    from distner.core.extras import check_installed
    from distner.data.conll import read_conll, resolve_data_dir, split_path
    from distner.labels import normalize_lang
    from distner.pretrained.cache import prebuild
    from distner.pretrained.specs import space_specs, spec
    from distner.spaces import load_space

    lang = normalize_lang(opts.lang)
    if opts.space:
        space = load_space(opts.space)
        specs, extras = space_specs(space), space.extra_train_choices()
        if not specs:
            raise DistnerError(f"{opts.space}: its trials never set encoder_features=e5; nothing to build")
    else:
        cfg = load_config(opts.config, ["encoder_features=e5", *opts.overrides])
        specs, extras = [spec(cfg.model)], [cfg.train.extra_langs]
    check_installed("distner features")  # without the extra, fail before reading the data
    # only the splits asked for are read (a test split can be larger than train); features need
    # the words alone, so the labels are read as they are
    read = {s: read_conll(split_path(opts.data_dir, lang, s)) for s in dict.fromkeys(opts.splits)}
    root = str(resolve_data_dir(opts.data_dir))
    corpus = Corpus(lang, "fine", read.get("train", []), read.get("dev", []), read.get("test", []), root)
    return [(lang, *built) for built in prebuild(corpus.feature_splits(extras, opts.splits), specs)]
