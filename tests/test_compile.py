"""keras_models.training.compile and fitting.set_determinism: a run asked for XLA trains with it,
and repeats its results all the same."""

import warnings

import pytest

from keras_models.cli import train as train_script
from keras_models.models.builder import build_model
from keras_models.training.compile import compile_for
from keras_models.training.config import Config
from keras_models.training.fitting import set_determinism

# What Keras says when it compiles without XLA a model that asked for it.
DROPPED = "doesn't support `jit_compile=True`"


@pytest.fixture
def determinism():
    from tensorflow.python.framework import config

    was_on = config.is_op_determinism_enabled()
    yield config
    set_determinism(not was_on)


@pytest.mark.parametrize("jit", [False, True])
def test_a_run_compiles_with_xla_exactly_when_asked(determinism, jit):
    cfg = Config(model="mlp", hidden=(8,), jit_compile=jit)
    set_determinism(cfg.recipe.jit_compile)
    assert determinism.is_op_determinism_enabled() is not jit
    model = build_model(cfg.spec)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=f".*{DROPPED}.*")
        compile_for(model, cfg)
    assert model.jit_compile is jit


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cc_aux", "cnn"])  # cnn: MaxPool's gradient, refused by XLA under op determinism
def test_a_run_with_jit_compile_trains_with_xla_and_repeats_itself(tmp_path, model):
    argv = ["--model", model, "--hidden", "32", "--pairs", "200", "--epochs", "2", "--rounds", "2"]
    argv += ["--jit-compile", "--no-export", "--quiet"]
    if model == "cnn":
        argv += ["--filters", "4,8"]
    histories = []
    for name in ("first", "second"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert train_script.main([*argv, "--out", str(tmp_path / name)]) == 0
        assert not [w for w in caught if DROPPED in str(w.message)]
        histories.append([(tmp_path / name / f"round-0{r}" / "history.csv").read_text() for r in range(2)])
    assert histories[0] == histories[1]  # the same seeds, the same weights: XLA's CPU programs repeat
