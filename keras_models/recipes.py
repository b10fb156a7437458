"""Named training recipes: `train.py --recipe NAME` and the study's experiments read them here.

    report   the report's settings: Adam lr 1e-4; 500 epochs (MLP family) / 100 (CNN family)
    fast     lr 1e-3 and a tenth of the epochs (50 / 25): learning rate x epochs kept
    best     cnn_aux only: the fast recipe plus BEST, the ablation row with the best mean
             validation accuracy among those that learn from the pairs alone (docs/REPORT.md)

`fast` was fixed before any run, and `best` by a rule fixed before the ablation ran; neither
was chosen on test pairs.
"""
from __future__ import annotations

from .config import family
from .errors import ConfigError

# Per family: (learning rate, epochs).
RECIPES = {
    "report": {"mlp": (1e-4, 500), "cnn": (1e-4, 100)},
    "fast": {"mlp": (1e-3, 50), "cnn": (1e-3, 25)},
}
TRAIN_RECIPES = (*RECIPES, "best")

# The levers that BEST is made of; the ablation's rows reuse them.
EXPECTED_AUGMENT = {"comparer_type": "expected", "augment": True}
# The architecture and lr of results/tuning/best_hparams.json (a random search scored on
# validation pairs).
TUNED = {"filters": (64, 128, 128), "hidden": (256,), "dropout": 0.1, "lr": 1.72e-3}
# The ablation row `stacked`: the tuned architecture with every lever that did not hurt.
BEST = {**EXPECTED_AUGMENT, **TUNED, "swap": True, "lr_schedule": "cosine", "label_smoothing": 0.1}


def recipe_changes(recipe: str, model: str) -> dict:
    """The Config changes of a recipe for one of the six models."""
    if recipe not in TRAIN_RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of {', '.join(TRAIN_RECIPES)}")
    if recipe == "best" and model != "cnn_aux":
        raise ConfigError(f"--recipe best is the ablation's winner for cnn_aux; for {model} use --recipe fast or report")
    lr, epochs = RECIPES["fast" if recipe == "best" else recipe][family(model)]
    return {"lr": lr, "epochs": epochs, **(BEST if recipe == "best" else {})}
