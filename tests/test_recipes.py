"""The named recipes (keras_models.training.recipes): what each sets, for which architectures,
and the one-line refusals."""

import pytest

from keras_models.core.errors import ConfigError
from keras_models.training.config import Config
from keras_models.training.recipes import EARLY, NAMED, RECIPES, TRAIN_RECIPES, recipe_changes


@pytest.mark.parametrize(("model", "family"), [("mlp", "mlp"), ("cc_aux", "mlp"), ("cnn", "cnn"), ("cnn_aux", "cnn")])
def test_report_and_fast_set_the_familys_learning_rate_and_epochs(model, family):
    assert RECIPES["report"][family] == ((1e-4, 500) if family == "mlp" else (1e-4, 100))
    report, fast = recipe_changes("report", model), recipe_changes("fast", model)
    assert (report["lr"], report["epochs"], report["network"]) == (*RECIPES["report"][family], "report")
    assert (fast["lr"], fast["epochs"]) == RECIPES["fast"][family]
    assert "network" not in fast
    early = recipe_changes("report_early", model)
    assert early == {**report, **EARLY}


@pytest.mark.parametrize("recipe", sorted(NAMED))
def test_the_named_recipes_train_cnn_aux_and_refuse_what_lacks_their_traits(recipe):
    cfg = Config(model="cnn_aux", **recipe_changes(recipe, "cnn_aux"))
    assert cfg.spec.network == "project"
    for key, value in NAMED[recipe].items():
        assert cfg.to_dict()[key] == (list(value) if isinstance(value, tuple) else value)
    for other in ("mlp", "cc_aux", "cnn", "cnn_cc"):
        with pytest.raises(ConfigError, match=f"--recipe {recipe} is an ablation's winner for cnn_aux"):
            recipe_changes(recipe, other)


def test_stacked_takes_the_fast_recipes_epochs_and_an_unknown_recipe_is_one_line():
    assert recipe_changes("stacked", "cnn_aux")["epochs"] == RECIPES["fast"]["cnn"][1]
    with pytest.raises(ConfigError, match="unknown recipe 'slow'; choose one of " + ", ".join(TRAIN_RECIPES)):
        recipe_changes("slow", "cnn_aux")
