"""Scores and summaries (keras_models.training.results): accuracies from a model's outputs, the
mean and sample standard deviation over rounds, and how they are printed."""

import numpy as np
import pytest

from keras_models.data.images import make_pairs
from keras_models.data.pipeline import SCORING_BATCH
from keras_models.training.config import Config
from keras_models.training.results import mean_std, pct, pm, score_outputs, scoring_batch, secs, summarise


def test_score_outputs_counts_compare_and_both_digits(embedded):
    pairs = make_pairs(embedded[1].images, embedded[1].labels, 4, np.random.default_rng(0))
    right = {
        "compare": pairs.target[:, None].astype(np.float32),
        "digit1": np.eye(10)[pairs.classes[:, 0]],
        "digit2": np.eye(10)[pairs.classes[:, 1]],
    }
    assert score_outputs(right, pairs) == {"accuracy": 1.0, "digit_accuracy": 1.0}
    wrong = {**right, "compare": 1.0 - right["compare"], "digit2": np.roll(right["digit2"], 1, axis=1)}
    assert score_outputs(wrong, pairs) == {"accuracy": 0.0, "digit_accuracy": 0.5}
    assert score_outputs({"compare": right["compare"]}, pairs) == {"accuracy": 1.0}


def test_mean_and_sample_std_over_rounds():
    assert mean_std([]) == (None, None)
    assert mean_std([0.8]) == (0.8, 0.0)
    mean, std = mean_std([0.8, 0.9, 1.0])
    assert mean == pytest.approx(0.9)
    assert std == pytest.approx(0.1)  # ddof = 1


def test_summarise_leaves_failed_rounds_out_and_keeps_every_score():
    rounds = [
        {
            "round": 0,
            "status": "ok",
            "seconds": 2.0,
            "wall_seconds": 3.0,
            "test_accuracy": 0.8,
            "train_accuracy": 1.0,
            "running_train_accuracy": 0.9,
        },
        {
            "round": 1,
            "status": "ok",
            "seconds": 4.0,
            "test_accuracy": 0.9,
            "train_accuracy": 1.0,
            "running_train_accuracy": 0.95,
        },
        {"round": 2, "status": "failed", "seconds": 1.0, "test_accuracy": 0.1},
    ]
    out = summarise({"rounds": rounds})
    assert (out["rounds_ok"], out["rounds_failed"]) == (2, 1)
    assert out["test_accuracy_mean"] == pytest.approx(0.85)
    assert out["running_train_accuracy_mean"] == pytest.approx(0.925)
    assert out["digit_test_accuracy_mean"] is None
    assert (out["seconds_mean"], out["seconds_max"], out["wall_seconds_mean"]) == (3.0, 4.0, 3.0)


def test_a_softmax_over_the_batch_is_scored_in_its_training_batches():
    assert scoring_batch(Config(model="cnn_aux")) == SCORING_BATCH
    batch = Config(model="cnn_aux", classifier_softmax="batch", export=False, batch_size=50)
    assert scoring_batch(batch) == 50


def test_how_numbers_are_printed():
    assert (pct(None), pct(0.97123)) == ("n/a", "97.12%")
    assert (pm(None, None), pm(0.8, 0.0123)) == ("n/a", "80.00 ± 1.23")
    assert (secs(None), secs(3.456), secs(12.6)) == ("-", "3.46", "13")
