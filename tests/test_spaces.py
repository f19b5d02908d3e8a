import pytest

from distner.config import FIELD_TYPES, RunConfig
from distner.core.errors import DistnerError
from distner.spaces import load_space

from .helpers import ROOT, write

SPACE_FILES = sorted((ROOT / "tune_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", [p for p in SPACE_FILES if p.name != "baseline.yaml"], ids=lambda p: p.name)
def test_every_shipped_space_is_valid_and_holds_the_seed(path):
    space = load_space(path)
    assert {p.name for p in space.params} | set(space.fixed) <= set(FIELD_TYPES)
    point = space.baseline_point()
    seed = RunConfig().to_flat()
    assert all(point[k] == seed[k] for k in point)


def test_default_space_explores_the_reference_knobs_and_more():
    space = load_space(ROOT / "tune_spaces" / "default.yaml")
    names = {p.name for p in space.params}
    assert {
        "embedding_dim",
        "hidden_dim",
        "batch_size",
        "seq_len",
        "lr",
        "dropout",
        "bidirectional",
        "num_layers",
    } <= names
    seq = next(p for p in space.params if p.name == "seq_len")
    assert 0 in seq.args  # "no truncation" is a choice
    assert space.max_epochs() == 10


@pytest.mark.parametrize(
    "text,message",
    [
        ("hiden_dim: {choice: [1, 2]}\n", "unknown config key 'hiden_dim'"),
        ("hidden_dim: {gaussian: [1, 2]}\n", "unknown distribution 'gaussian'"),
        ("lr: {loguniform: [0, 1]}\n", "bad bounds"),
        ("lr: {uniform: [1]}\n", "uniform takes 2 numbers"),
        ("hidden_dim: {uniform: [1, 600]}\n", "is an int"),
        ("hidden_dim: {choice: [a, b]}\n", "needs a int"),
        ("hidden_dim: {choice: [16, 32]}\n", "reference's value 520 is outside"),
        ("epochs: 0\nhidden_dim: {choice: [520]}\n", "epochs: must be > 0"),
        ("epochs: 3\n", "nothing to search"),
        (
            "dropout: {uniform: [0, 1.5]}\n",
            r"'dropout': bound 1.5 of uniform \[0.0, 1.5\] is out of range \(dropout",
        ),
        (
            "batch_size: {randint: [-5, 64]}\n",
            r"bound -5 of randint \[-5, 64\] is out of range \(batch_size: must be > 0",
        ),
        ("char_kernel: {randint: [3, 7]}\n", "value 4 of randint.*char_kernel: must be odd"),
        ("lr: {loguniform: [1.0e-4, .inf]}\n", "bound inf.*lr: must be a finite number"),
        ("seq_len: {choice: [25, -1]}\n", "value -1 of choice.*seq_len: must be >= 0"),
        ("dropout: {choice: [0.0, .nan]}\n", "value nan of choice.*dropout: must be a finite number"),
    ],
)
def test_bad_spaces_name_the_key(tmp_path, text, message):
    with pytest.raises(DistnerError, match=message) as e:
        load_space(write(tmp_path / "s.yaml", text)).baseline_point()
    assert str(tmp_path / "s.yaml") in str(e.value)


def test_start_point_takes_the_searched_keys_and_checks_them(tmp_path):
    space = load_space(
        write(tmp_path / "s.yaml", "hidden_dim: {choice: [16, 520]}\nlr: {loguniform: [1.0e-3, 0.1]}\n")
    )
    good = write(tmp_path / "best.yaml", "hidden_dim: 16\nlr: 0.02\nepochs: 3\n_meta: {trial: x}\n")
    assert space.start_point(good) == {"hidden_dim": 16, "lr": 0.02}
    bad = write(tmp_path / "bad.yaml", "hidden_dim: 64\n")
    with pytest.raises(DistnerError, match=r"bad.yaml: key 'hidden_dim': value 64 is outside choice"):
        space.start_point(bad)
    with pytest.raises(DistnerError, match="missing.yaml"):
        space.start_point(tmp_path / "missing.yaml")


def test_builtin_spaces_from_any_folder(tmp_path, monkeypatch):
    """The defaults name `tune_spaces/...`; from a folder without one, the spaces that ship with
    distner answer, and a name that none of them has is an error."""
    from distner.spaces import builtin_space, resolve_space_path

    monkeypatch.chdir(tmp_path)
    found = resolve_space_path("tune_spaces/default.yaml")
    assert found == builtin_space("default.yaml") and found.parent.name == "tune_spaces"
    assert load_space("smoke.yaml").params
    (tmp_path / "tune_spaces").mkdir()
    mine = write(tmp_path / "tune_spaces" / "default.yaml", "lr: {loguniform: [1.0e-3, 1.0e-1]}\n")
    assert resolve_space_path("tune_spaces/default.yaml") == mine  # a file that is there wins
    with pytest.raises(DistnerError, match="nope.yaml: search space file not found"):
        resolve_space_path("tune_spaces/nope.yaml")
    with pytest.raises(DistnerError, match="search space file not found"):
        resolve_space_path(tmp_path / "default.yaml")  # absolute paths are taken as given


def test_focus_space_can_start_from_every_first_round_winner():
    """The focus round (experiments/pretrained-focus.yaml) starts its study from a first-round winner:
    each must lie inside tune_spaces/pretrained_focus.yaml, or the study refuses to start."""
    space = load_space(ROOT / "tune_spaces" / "pretrained_focus.yaml")
    winners = sorted((ROOT / "results" / "pretrained" / "best").glob("*.yaml"))
    assert len(winners) == 6
    for path in winners:
        point = space.start_point(path)
        assert point["encoder_layers"] in {"last4", "last8"}


def test_a_space_names_the_train_splits_its_trials_can_pick(tmp_path):
    """extra_train_langs, searched or fixed, as language codes: the train splits a study's driver
    (and `distner features --space`) builds encoder features for."""
    path = tmp_path / "s.yaml"
    path.write_text("hidden_dim: {choice: [8, 520]}\n")
    assert load_space(path).extra_train_choices() == [()]
    path.write_text("extra_train_langs: {choice: ['', bengali, 'bn, en', bn]}\n")
    assert load_space(path).extra_train_choices() == [(), ("bn",), ("bn", "en")]
    path.write_text("extra_train_langs: en\nhidden_dim: {choice: [8, 520]}\n")
    assert load_space(path).extra_train_choices() == [("en",)]


E5 = "encoder_features: e5\nembedding_dim: 384\n"


def test_auto_train_layers_among_a_choice(tmp_path):
    """`encoder_train_layers: {choice: [0, auto]}`: auto is a value a trial can get, resolved with
    the trial's own encoder_layers; a start config whose number is what auto gives it starts at auto."""
    space = load_space(
        write(
            tmp_path / "s.yaml",
            E5 + "encoder_layers: {choice: [last4, last8]}\nencoder_train_layers: {choice: [0, auto]}\n",
        )
    )
    p = next(p for p in space.params if p.name == "encoder_train_layers")
    assert p.args == (0, "auto") and p.upper == 0
    assert space.baseline_point() == {"encoder_layers": "last4", "encoder_train_layers": 0}
    for layers, n in (("last4", 4), ("last8", 8)):
        trial = RunConfig.from_flat(
            {**space.base(), "encoder_layers": layers, "encoder_train_layers": "auto"}
        )
        assert trial.model.encoder_train_layers == n
        start = trial.to_flat()
        assert space.start_point(RunConfig.from_flat(start), "x") == {
            "encoder_layers": layers,
            "encoder_train_layers": "auto",
        }
    off = RunConfig.from_flat({**space.base(), "encoder_layers": "last8"})
    assert space.start_point(off, "x")["encoder_train_layers"] == 0
    four_of_eight = RunConfig.from_flat(
        {**space.base(), "encoder_layers": "last4", "encoder_train_layers": 8}
    )
    with pytest.raises(
        DistnerError, match=r"x: key 'encoder_train_layers': value 8 is outside choice \[0, 'auto'\]"
    ):
        space.start_point(four_of_eight, "x")


def test_auto_train_layers_fixed_in_a_space(tmp_path):
    """A fixed `encoder_train_layers: auto` stays auto in the space's base: each trial resolves it
    with the encoder_layers it got."""
    space = load_space(
        write(
            tmp_path / "s.yaml", E5 + "encoder_layers: {choice: [last4, 3-5]}\nencoder_train_layers: auto\n"
        )
    )
    assert space.base()["encoder_train_layers"] == "auto" and space.values("encoder_train_layers") == (
        "auto",
    )
    got = [
        RunConfig.from_flat({**space.base(), "encoder_layers": x}).model.encoder_train_layers
        for x in ("last4", "3-5")
    ]
    assert got == [4, 10]


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "encoder_train_layers: {choice: [0, x]}\n",
            "key 'encoder_train_layers': encoder_train_layers: must be an integer in 0-12 or auto, got 'x'",
        ),
        (
            "encoder_train_layers: {choice: [0, 13]}\n",
            "value 13 of choice .* must be an integer in 0-12 or auto, got 13",
        ),
        (
            "encoder_train_layers: y\nhidden_dim: {choice: [8, 520]}\n",
            "must be an integer in 0-12 or auto, got 'y'",
        ),
    ],
)
def test_bad_train_layers_in_a_space(tmp_path, text, message):
    with pytest.raises(DistnerError, match=message):
        load_space(write(tmp_path / "s.yaml", E5 + text))
