import pytest

from distner.config import ModelConfig, RunConfig, TrainConfig, load_config
from distner.core.errors import DistnerError

from .helpers import ROOT, write


def test_defaults_are_the_seed():
    cfg = RunConfig()
    assert cfg.model == ModelConfig(520, 520, 1, False, 0.0)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.seq_len) == (10, 35, 25)


def test_baseline_yaml_is_the_seed():
    cfg = load_config(ROOT / "tune_spaces" / "baseline.yaml")
    assert cfg.model.embedding_dim == 520 and cfg.model.hidden_dim == 520
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.seq_len) == (10, 35, 25)


def test_overrides_are_typed():
    cfg = load_config(None, ["epochs=1", "lr=3e-4", "bidirectional=true", "dropout=0.5"])
    assert cfg.train.epochs == 1 and cfg.train.lr == pytest.approx(3e-4)
    assert cfg.model.bidirectional is True and cfg.model.dropout == 0.5
    assert RunConfig.from_flat(cfg.to_flat()) == cfg


@pytest.mark.parametrize(
    "items,message",
    [
        (["epochz=1"], "unknown config key 'epochz'"),
        (["epochs=one"], "key 'epochs' needs a int"),
        (["epochs=1.5"], "key 'epochs' needs a int"),
        (["epochs"], "expected KEY=VALUE"),
        (["epochs=0"], "epochs: must be > 0"),
        (["dropout=1.5"], "dropout: must be in"),
        (["lr=nan"], r"lr: must be a finite number .*, got nan"),
        (["lr=1e30"], r"lr: must be in \(0, 10\]"),
        (["weight_decay=1e300"], "weight_decay: must be a finite number"),
        (["weight_decay=inf"], r"weight_decay: must be a finite number .*, got inf"),
        (["grad_clip=-.inf"], r"grad_clip: must be a finite number .*, got -inf"),
        (["word_dropout=.nan"], "word_dropout: must be a finite number"),
        (["seed=-1"], r"seed: must be in \[0, 4294967295\]"),
        (["lr_schedule=step"], "lr_schedule: must be one of constant, linear, cosine, got 'step'"),
        (["seed=4294967296"], "seed: must be in"),
        (["extra_train_langs=bn,xx"], "extra_train_langs: unknown language 'xx'"),
        (["extra_train_langs=bn,bengali"], "extra_train_langs: bn is listed twice"),
    ],
)
def test_bad_overrides(items, message):
    with pytest.raises(DistnerError, match=message):
        load_config(None, items)


def test_extra_train_langs_are_stored_as_data_folder_codes():
    cfg = load_config(None, ["extra_train_langs= Bengali, EN"])
    assert cfg.train.extra_train_langs == "bn,en" and cfg.train.extra_langs == ("bn", "en")
    assert RunConfig.from_flat(cfg.to_flat()) == cfg  # what config.yaml saves reads back the same
    assert TrainConfig().extra_langs == ()


def test_bad_yaml_files(tmp_path):
    with pytest.raises(DistnerError, match=r"bad\.yaml:2: invalid YAML"):
        load_config(write(tmp_path / "bad.yaml", "epochs: 1\n  hidden_dim: [\n"))
    with pytest.raises(DistnerError, match="unknown config key 'hiden_dim'"):
        load_config(write(tmp_path / "typo.yaml", "hiden_dim: 5\n"))
    with pytest.raises(DistnerError, match="expected a mapping"):
        load_config(write(tmp_path / "list.yaml", "- 1\n"))
    with pytest.raises(DistnerError, match="file not found"):
        load_config(tmp_path / "none.yaml")


def test_echoed_values_are_capped(tmp_path):
    """A YAML alias bomb (a few hundred bytes, billions of elements) must not become the message."""
    levels = ["&a [x, x, x, x, x, x, x, x, x]"]
    levels += [f"&{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]
    path = write(tmp_path / "bomb.yaml", f"epochs: [{', '.join(levels)}]\n")
    with pytest.raises(DistnerError) as e:
        load_config(path)
    assert "needs a int" in str(e.value) and len(str(e.value)) < 400
    with pytest.raises(DistnerError) as e:
        load_config(None, ["epochs=" + "9" * 10_000 + "x"])
    assert len(str(e.value)) < 400


def test_frozen():
    with pytest.raises(AttributeError):
        TrainConfig().epochs = 3  # type: ignore[misc]


def test_merge_keys_are_refused_with_their_line_and_a_merge_bomb_costs_nothing(tmp_path):
    with pytest.raises(DistnerError, match=r"m\.yaml:2: invalid YAML \(merge keys \(<<\) are not supported"):
        load_config(write(tmp_path / "m.yaml", "lr: 0.005\n<<: {epochs: 1}\n"))
    # nested merges copy entries for real (9**8 of them here): refused at the first `<<`, at once
    levels = ["a: &a {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, k8: 8}"]
    levels += [f"{n}: &{n} {{<<: [{', '.join([f'*{p}'] * 9)}]}}" for p, n in zip("abcdefg", "bcdefgh")]
    with pytest.raises(DistnerError, match="merge keys"):
        load_config(write(tmp_path / "bomb.yaml", "\n".join(levels) + "\n"))


def test_pretrained_vectors_is_checked_when_a_config_is_read(tmp_path):
    huge = write(tmp_path / "v.yaml", "pretrained_vectors: " + "x" * 5_000_000)
    with pytest.raises(
        DistnerError, match=r"v\.yaml: pretrained_vectors: too long for a path \(5,000,000 char"
    ):
        load_config(huge)
    with pytest.raises(DistnerError, match=r"--set: pretrained_vectors .*no\.vec: file not found"):
        load_config(None, [f"pretrained_vectors={tmp_path / 'no.vec'}"])
    with pytest.raises(DistnerError, match="pretrained_vectors .*: a folder, not a file"):
        load_config(None, [f"pretrained_vectors={tmp_path}"])
    vec = write(tmp_path / "w.vec", "1 2\nword 0.1 0.2\n")
    assert load_config(None, [f"pretrained_vectors={vec}"]).model.pretrained_vectors == str(vec)


E5 = "encoder_features: e5\nembedding_dim: 384\n"


@pytest.mark.parametrize("layers,n", [("last4", 4), ("last8", 8), ("3-5", 10), ("last", 1), ("12", 1)])
def test_auto_train_layers_are_the_layers_the_features_read(tmp_path, layers, n):
    """`encoder_train_layers: auto` is N = 12 + 1 - the lowest layer encoder_layers reads,
    resolved when the config is built: a file saying auto equals one saying N, and what is saved
    (to_flat) is the number."""
    auto = load_config(
        write(tmp_path / "a.yaml", f"{E5}encoder_layers: '{layers}'\nencoder_train_layers: auto\n")
    )
    number = load_config(
        write(tmp_path / "n.yaml", f"{E5}encoder_layers: '{layers}'\nencoder_train_layers: {n}\n")
    )
    assert auto == number and auto.to_flat()["encoder_train_layers"] == n
    assert RunConfig.from_flat(auto.to_flat()) == auto
    flat = {"encoder_features": "e5", "embedding_dim": 384, "encoder_layers": layers}
    assert RunConfig.from_flat({**flat, "encoder_train_layers": "auto"}) == number
    auto_model = ModelConfig(
        embedding_dim=384, encoder_features="e5", encoder_layers=layers, encoder_train_layers="auto"
    )  # type: ignore[arg-type]
    assert auto_model == number.model
    assert load_config(None, [f"{k}={v}" for k, v in flat.items()] + ["encoder_train_layers=auto"]) == number


def test_auto_uses_encoder_layers_after_the_overrides(tmp_path):
    """auto is resolved with the config's own encoder_layers as --set leaves it: a file's auto
    stays auto under an override of encoder_layers, and --set auto reads the file's layers."""
    path = write(tmp_path / "a.yaml", f"{E5}encoder_layers: last4\nencoder_train_layers: auto\n")
    assert load_config(path).model.encoder_train_layers == 4
    assert load_config(path, ["encoder_layers=last8"]).model.encoder_train_layers == 8
    with pytest.raises(
        DistnerError, match="with encoder_train_layers=2 it must lie"
    ):  # an explicit number wins
        load_config(path, ["encoder_layers=last8", "encoder_train_layers=2"])
    fixed = write(tmp_path / "n.yaml", f"{E5}encoder_layers: 3-5\n")
    assert load_config(fixed, ["encoder_train_layers=auto"]).model.encoder_train_layers == 10
    # a number is a number: it is not re-derived when encoder_layers changes
    four = write(tmp_path / "four.yaml", f"{E5}encoder_layers: last4\nencoder_train_layers: 4\n")
    with pytest.raises(DistnerError, match="encoder_layers=last8: with encoder_train_layers=4 it must lie"):
        load_config(four, ["encoder_layers=last8"])
    # no encoder features: no encoder to train
    assert load_config(None, ["encoder_train_layers=auto"]).model.encoder_train_layers == 0


@pytest.mark.parametrize(
    "value,message",
    [
        (
            "x",
            "--set 'encoder_train_layers=x': encoder_train_layers: must be an integer in 0-12 or auto, "
            "got 'x'",
        ),
        ("Auto", "encoder_train_layers: must be an integer in 0-12 or auto, got 'Auto'"),
        ("1.5", "encoder_train_layers: must be an integer in 0-12 or auto, got '1.5'"),
        ("true", "encoder_train_layers: must be an integer in 0-12 or auto, got 'true'"),
        ("13", "encoder_train_layers: must be an integer in 0-12 or auto, got 13"),
        ("-1", "encoder_train_layers: must be an integer in 0-12 or auto, got -1"),
    ],
)
def test_bad_train_layers_name_the_key(value, message):
    with pytest.raises(DistnerError) as e:
        load_config(None, ["encoder_features=e5", "embedding_dim=384", f"encoder_train_layers={value}"])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_train_layers_in_a_file_name_the_file(tmp_path):
    path = write(tmp_path / "c.yaml", f"{E5}encoder_train_layers: [4]\n")
    with pytest.raises(
        DistnerError, match=r"c.yaml: encoder_train_layers: must be an integer in 0-12 or auto, got \[4\]"
    ):
        load_config(path)
    bad_layers = write(tmp_path / "l.yaml", f"{E5}encoder_layers: last13\nencoder_train_layers: auto\n")
    with pytest.raises(DistnerError, match="l.yaml: encoder_layers: must be last, lastN"):
        load_config(bad_layers)
