"""Scores and summaries: accuracies of a model on pairs, mean and standard deviation over
rounds, and how percentages are printed."""

from __future__ import annotations

import json

import numpy as np

from keras_models.data.images import Pairs
from keras_models.data.pipeline import SCORING_BATCH


def scoring_batch(cfg) -> int:
    """How many pairs a model of the Config `cfg` is scored on at once: SCORING_BATCH, except a
    model whose softmax runs over the batch, whose answers depend on it; it is scored in
    batches of its training size, as the authors' test loop scored theirs."""
    return cfg.recipe.batch_size if cfg.spec.classifier_softmax == "batch" else SCORING_BATCH


def evaluate_pairs(model, pairs: Pairs, batch: int = SCORING_BATCH) -> dict:
    """Accuracy of compare, and the mean digit accuracy for models with digit outputs, scored
    `batch` pairs at a time."""
    return score_outputs(model.predict(pairs.x, batch_size=batch, verbose=0), pairs)


def score_outputs(out: dict, pairs: Pairs) -> dict:
    """The accuracies of evaluate_pairs, from a model's (or an ensemble's) output dict."""
    result = {"accuracy": float(np.mean((np.asarray(out["compare"])[:, 0] > 0.5) == (pairs.target > 0.5)))}
    if "digit1" in out:
        hits = [np.argmax(out[f"digit{i + 1}"], axis=1) == pairs.classes[:, i] for i in (0, 1)]
        result["digit_accuracy"] = float(np.mean(hits))
    return result


def mean_std(values) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1) over rounds; a single round has no spread."""
    values = list(values)
    if not values:
        return None, None
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)


SCORES = (
    "test_accuracy",
    "train_accuracy",
    "running_train_accuracy",
    "digit_test_accuracy",
    "validation_accuracy",
    "dev_accuracy",
)


def summarise(results: dict) -> dict:
    """A run's results (results.json) with the summary over its finished rounds: each score's
    mean and std, how many rounds finished and failed, and their training seconds (mean and
    max) and wall-clock seconds (mean). The one summary that train.py, the study, the ablations
    and the tuner read."""
    ok = ok_rounds(results)
    for key in SCORES:
        results[f"{key}_mean"], results[f"{key}_std"] = mean_std(r[key] for r in ok if r.get(key) is not None)
    results["rounds_ok"], results["rounds_failed"] = len(ok), len(results["rounds"]) - len(ok)
    seconds = [r["seconds"] for r in ok]
    results["seconds_mean"] = float(np.mean(seconds)) if ok else None
    results["seconds_max"] = float(max(seconds)) if ok else None
    # Rounds written by earlier code have no wall-clock: the mean is over those that do.
    walls = [r["wall_seconds"] for r in ok if r.get("wall_seconds") is not None]
    results["wall_seconds_mean"] = float(np.mean(walls)) if walls else None
    return results


def ok_rounds(results: dict) -> list[dict]:
    return [r for r in results["rounds"] if r["status"] == "ok"]


def read_results(path) -> dict | None:
    """The summarised results.json of a run folder, or None when it has not finished a round."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        return None
    results = summarise(json.loads(path.read_text()))
    return results if results["rounds_ok"] else None


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def pm(mean, std, scale=100.0) -> str:
    return "n/a" if mean is None else f"{scale * mean:.2f} ± {scale * std:.2f}"


def secs(s: float | None) -> str:
    """Seconds in a table: whole seconds, or two decimals below 10 s; '-' where none were
    recorded (a round written before rounds kept their wall-clock)."""
    return "-" if s is None else f"{s:.2f}" if s < 10 else f"{s:.0f}"
