"""Scores and summaries: accuracies of a model on pairs, mean and standard deviation over
rounds, and how percentages are printed."""
from __future__ import annotations

import numpy as np

from .data import Pairs


def evaluate_pairs(model, pairs: Pairs) -> dict:
    """Accuracy of compare, and the mean digit accuracy for models with digit outputs."""
    return score_outputs(model.predict(pairs.x, batch_size=1000, verbose=0), pairs)


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


def summarise(results: dict) -> dict:
    ok = [r for r in results["rounds"] if r["status"] == "ok"]
    for key in ("test_accuracy", "train_accuracy", "digit_test_accuracy", "validation_accuracy", "dev_accuracy"):
        values = [r[key] for r in ok if r.get(key) is not None]
        results[f"{key}_mean"], results[f"{key}_std"] = mean_std(values)
    results["rounds_ok"], results["rounds_failed"] = len(ok), len(results["rounds"]) - len(ok)
    return results


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def pm(mean, std, scale=100.0) -> str:
    return "n/a" if mean is None else f"{scale * mean:.2f} ± {scale * std:.2f}"
