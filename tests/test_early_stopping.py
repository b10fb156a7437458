"""--early-stopping: a round stops once its validation compare accuracy stops improving, and keeps
its best epoch's weights; it is chosen on validation pairs only."""

import numpy as np
import pytest

from keras_models.core.errors import ConfigError
from keras_models.training.config import Config


def test_early_stopping_needs_validation_pairs():
    with pytest.raises(ConfigError, match="--early-stopping watches the validation pairs"):
        Config(early_stopping=5)


@pytest.mark.slow
def test_a_round_stops_at_its_patience_and_keeps_its_best_validation_epoch(tmp_path):
    from keras_models.training.run import run

    cfg = Config(
        model="cnn_cc", filters=(4, 8), hidden=(16,), epochs=40, lr=3e-3, pairs=200, validation_split=0.25,
        early_stopping=2, out=str(tmp_path / "run"), export=False, quiet=True,
    )  # fmt: skip
    results = run(cfg, log=lambda *_: None)
    (r,) = results["rounds"]
    rows = _history(tmp_path / "run" / "round-00" / "history.csv")
    val = np.array([float(x["val_compare_accuracy"]) for x in rows])
    assert r["epochs_run"] == len(rows) < 40  # stopped before its last epoch
    best = int(np.argmax(val))
    assert len(rows) - 1 - best >= 2  # only after `patience` epochs without a better one
    # The round's model is its best epoch's: its validation accuracy is that epoch's.
    assert r["validation_accuracy"] == pytest.approx(val[best], abs=1e-6)


def _history(path):
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


def test_the_report_early_recipe_is_the_reports_with_its_stopping_rule():
    from keras_models.training.recipes import recipe_changes

    for model in ("mlp", "cnn_cc"):
        assert recipe_changes("report_early", model) == {
            **recipe_changes("report", model),
            "validation_split": 0.1,
            "early_stopping": 10,
        }
