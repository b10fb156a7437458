"""Every setting declared once: its flag, check and --help come from the declaration."""

import argparse
import dataclasses

import pytest

from keras_models.cli import add_config_args
from keras_models.core.errors import ConfigError
from keras_models.training.config import Config
from keras_models.training.settings import FIELDS, ModelSpec, Recipe, RunSettings


def parser():
    p = argparse.ArgumentParser()
    add_config_args(p)
    return p


def test_every_declared_setting_has_its_flag_and_help_shows_its_default_once():
    text = " ".join(parser().format_help().split())
    for name, (_, f) in FIELDS.items():
        if not f.metadata["flag"]:
            continue
        flag = "--" + name.replace("_", "-")
        assert flag in text, flag
    assert text.count("(default: 0.5)") == 1  # dropout's, as declared
    # The study's levers are no settings: they reach training as Levers (experiments/levers.py).
    for retired in ("--elastic", "--ema", "--repair", "--weight-decay", "--pretrain-epochs", "--teachers"):
        assert retired not in text


@pytest.mark.parametrize(
    ("argv", "name", "value"),
    [
        (["--shift", "3"], "shift", 3),
        (["--no-batch-norm"], "batch_norm", False),
        (["--no-export"], "export", False),
        (["--hidden", "8,8"], "hidden", (8, 8)),
        (["--lr-schedule", "cosine"], "lr_schedule", "cosine"),
        (["--test-curve"], "test_curve", True),
        (["--swap"], "swap", True),
        (["--out", "x"], "out", "x"),
    ],
)
def test_flags_parse_into_their_settings(argv, name, value):
    assert getattr(parser().parse_args(argv), name) == value


@pytest.mark.parametrize(
    "argv",
    [["--shift", "7"], ["--dropout", "1"], ["--lr", "0"], ["--seed", "-1"], ["--optimizer", "sgd"], ["--hidden", "0"]],
)
def test_flags_refuse_what_the_declaration_refuses(argv, capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(argv)
    name = argv[0][2:].replace("-", "_")
    value = parser().get_default(name)
    assert value is None  # argparse leaves defaults to the declaration
    with pytest.raises(ConfigError):  # and the Config refuses the same value
        Config(**{name: {"7": 7, "1": 1.0, "0": 0.0, "-1": -1, "sgd": "sgd"}.get(argv[1], (0,))})


def test_the_three_groups_hold_three_concerns():
    spec = {f.name for f in dataclasses.fields(ModelSpec)}
    recipe = {f.name for f in dataclasses.fields(Recipe)}
    run = {f.name for f in dataclasses.fields(RunSettings)}
    assert {"model", "hidden", "filters", "augment"} <= spec
    assert {"lr", "epochs", "seed", "swap"} <= recipe
    assert {"rounds", "out", "strategy", "export_dir"} <= run
    assert not (spec & recipe)
    assert not (recipe & run)
    assert not (spec & run)
    cfg = Config(model="cnn_aux", lr=1e-3, rounds=3)
    assert (cfg.spec.model, cfg.recipe.lr, cfg.run.rounds) == ("cnn_aux", 1e-3, 3)


def test_a_config_is_saved_as_its_groups_and_read_back_strictly(tmp_path):
    cfg = Config(model="cnn_aux", filters=(8,), lr=3e-3)
    groups = cfg.to_groups()
    assert set(groups) == {"spec", "recipe", "run"}
    assert Config.from_groups(groups) == cfg
    older = {
        g: {k: v for k, v in part.items() if k not in ("shift", "rotation", "optimizer")} for g, part in groups.items()
    }
    assert Config.from_groups(older) == cfg  # a file from before these settings: their defaults
    assert Config.from_groups(cfg.to_dict()) == cfg  # the flat form of files written before 2026-12-06
    with pytest.raises(ConfigError, match="unknown recipe settings: colour .*another version"):
        Config.from_groups({**groups, "recipe": {**groups["recipe"], "colour": "red"}})
    with pytest.raises(ConfigError, match="unknown spec settings: lr"):
        Config.from_groups({**groups, "spec": {**groups["spec"], "lr": 1.0}})  # a setting in another's group
    with pytest.raises(ConfigError, match="config group 'run' must be a JSON object, not list"):
        Config.from_groups({**groups, "run": [1]})
    with pytest.raises(ConfigError, match="settings must be a JSON object, not list"):
        Config.from_groups([1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.spec = None


def test_resuming_compares_spec_and_recipe_only(tmp_path):
    from keras_models.core.errors import RunError
    from keras_models.training.config import check_resumable

    old = {"config": Config(model="cnn_aux", rounds=2, out="a", quiet=True).to_groups()}
    check_resumable(old, Config(model="cnn_aux", rounds=5, out="b", strategy="default"), tmp_path)
    with pytest.raises(RunError, match=r"other settings \(filters, lr\)"):
        check_resumable(old, Config(model="cnn_aux", lr=1.0, filters=(4,)), tmp_path)
    with pytest.raises(RunError, match="cannot resume .*unknown config groups: gone"):
        check_resumable({"config": {**old["config"], "gone": 1}}, Config(model="cnn_aux"), tmp_path)


def test_settings_and_their_checks_load_no_tensorflow():
    """A bad flag or resumed folder is refused before TensorFlow's start-up costs seconds."""
    from helpers import run_python

    code = (
        "import sys; from keras_models.cli import train; "
        "cfg = train.build_config(train.parse_args(['--model', 'cnn_aux', '--augment', '--members', '2'])); "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    proc = run_python(["-c", code])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
