"""Config: validation of every setting, its JSON round trip, and the command-line flags."""

import argparse

import pytest

from keras_models.cli import config_from_args, int_list, positive_int
from keras_models.core.errors import ConfigError
from keras_models.models import architectures
from keras_models.models.builder import build_model
from keras_models.training.config import Config


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown model"):
        Config(model="resnet")
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        Config(epochs=0)
    with pytest.raises(ValueError, match="dropout"):
        Config(dropout=1.5)


def test_augment_needs_a_weight_sharing_model():
    with pytest.raises(ValueError, match="weight-sharing"):
        Config(model="cnn", augment=True)


def test_config_json_round_trip(tmp_path):
    from keras_models.training.config import load_config, save_config

    cfg = Config(model="cnn_cc", hidden=(128,), filters=(16, 32, 32), comparer_type="expected", swap=True)
    save_config(cfg, tmp_path / "config.json")
    again = load_config(tmp_path / "config.json")
    assert again == cfg
    assert build_model(again.spec).count_params() == build_model(cfg.spec).count_params()


def test_new_training_options_reject_bad_values():
    with pytest.raises(ValueError, match="label smoothing must be"):
        Config(model="cnn_aux", label_smoothing=1.0)
    with pytest.raises(ValueError, match="needs a weight-sharing model"):
        Config(model="mlp", label_smoothing=0.1)


def test_members_need_one_process():
    with pytest.raises(ValueError, match="members must be"):
        Config(members=0)
    with pytest.raises(ValueError, match="one --member per run"):
        Config(members=2, strategy="multiworker")


def test_int_lists_and_numbers_are_parsed_or_refused_in_one_line():
    assert int_list("500,500") == (500, 500)
    assert int_list("8,") == (8,)
    for bad in ("", "a,b", "0", "-3,4"):
        with pytest.raises(argparse.ArgumentTypeError):
            int_list(bad)
    assert positive_int("3") == 3
    for bad in ("0", "1.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)


def test_flags_given_override_the_base_and_others_keep_it():
    args = argparse.Namespace(model="cnn_aux", lr=None, epochs=7, not_a_setting=1)
    cfg = config_from_args(args, Config(lr=5e-3, epochs=2))
    assert (cfg.spec.model, cfg.recipe.lr, cfg.recipe.epochs) == ("cnn_aux", 5e-3, 7)


def test_outputs_follow_the_registered_traits():
    for name in ("mlp", "cnn"):
        assert architectures.get(name).outputs == ("compare",)
        assert list(build_model(Config(model=name).spec).output) == ["compare"]
    for name in ("cc", "cc_aux", "cnn_cc", "cnn_aux"):
        assert architectures.get(name).outputs == ("compare", "digit1", "digit2")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seed": -1}, "seed must be an integer in \\[0, 4294967295\\]"),
        ({"seed": 99_999_999_999}, "seed must be an integer in \\[0, 4294967295\\]"),
        ({"seed": 2**32 - 5, "rounds": 10}, "below 2\\*\\*32"),
        ({"lr": float("inf")}, "lr must be a positive number"),
        ({"hidden": "abc"}, "hidden must be"),
        ({"lr": "fast"}, "lr must be"),
        ({"augment": 1}, "augment must be bool"),
        ({"members": 3, "seed": 2**32 - 1001}, "members 0-2 reaches"),
    ],
)
def test_settings_that_used_to_end_in_tracebacks_are_config_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config(model="cc_aux").replace(**changes)


def test_flags_refuse_infinity_and_out_of_range_seeds():
    from keras_models.cli import positive_float

    for bad in ("inf", "nan", "-inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_float(bad)
    parser = argparse.ArgumentParser()
    from keras_models.cli import add_config_args

    add_config_args(parser)
    for seed in ("-1", "99999999999"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--seed", seed])


def test_the_optimizer_and_schedule_options_are_checked():
    with pytest.raises(ValueError, match="unknown optimizer"):
        Config(model="cnn_aux", optimizer="rmsprop")
    with pytest.raises(ValueError, match="unknown lr schedule"):
        Config(lr_schedule="triangular")
    from keras_models.training.compile import compile_for

    cfg = Config(model="cnn_aux", filters=(4,), hidden=(8,), optimizer="nesterov", lr_schedule="onecycle")
    opt = compile_for(build_model(cfg.spec), cfg).optimizer
    assert opt.nesterov
    assert opt.momentum == 0.9
    assert not opt.use_ema


def test_augmentation_sizes_are_checked_and_shape_the_model():
    for changes, message in (
        ({"shift": 7}, "shift must be"),
        ({"shift": -1}, "shift must be"),
        ({"rotation": 181.0}, "rotation must be"),
        ({"shift": 1.5}, "shift must be int"),
    ):
        with pytest.raises(ValueError, match=message):
            Config(model="cnn_aux", augment=True, **changes)
    small = dict(model="cnn_aux", filters=(4,), hidden=(8,), augment=True)
    names = {layer.name for layer in build_model(Config(**small).spec).layers}
    assert {"augment_shift", "augment_rotate"} <= names
    model = build_model(Config(**small, shift=1, rotation=0.0).spec)
    assert model.get_layer("augment_shift").height_factor == pytest.approx(1 / 14)
    assert "augment_rotate" not in {layer.name for layer in model.layers}
    names = {layer.name for layer in build_model(Config(**small, shift=0, rotation=5.0).spec).layers}
    assert "augment_shift" not in names
    assert "augment_rotate" in names
    from keras_models.cli import add_config_args

    parser = argparse.ArgumentParser()
    add_config_args(parser)
    assert parser.parse_args(["--shift", "1", "--rotation", "0"]).shift == 1
    for flag, value in (("--shift", "7"), ("--shift", "1.5"), ("--rotation", "nan")):
        with pytest.raises(SystemExit):
            parser.parse_args([flag, value])
