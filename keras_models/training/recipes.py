"""Named training recipes: `train.py --recipe NAME` and the study's experiments read them here.

    report    the report's networks as its authors built them (--network report), and its
              settings: Adam lr 1e-4; 500 epochs (MLP family) / 100 (CNN family)
    report_early  the same, stopped by validation pairs: 10% of the training pairs held out, the
              best epoch kept once 10 have passed without a better one
    fast      lr 1e-3 and 50 epochs (MLP family, a tenth) / 25 (CNN family, a quarter)
    sprint    cnn_aux with a 1.2-MFLOP classifier: the small-model ablation's best row on dev
              pairs among those that train within the seconds of the best public recipe (the
              PyTorch peer, run beside the rows)
    speedrun  cnn_aux with 2 convs of 16 and 32 filters per block: that ablation's best row on
              dev pairs within 3.5 times the peer's seconds
    best      cnn_aux at its default size: that ablation's best row on dev pairs within 15 min
    stacked   cnn_aux, the tuned 600k-parameter classifier: the earlier ablation's best row on
              validation pairs (its 3-member ensemble with test-time shifts: 99.01%)

`fast` was fixed before any run; `sprint`, `speedrun`, `best` and `stacked` by rules fixed before their
ablations ran (experiments/frontier.py, experiments/ablation.py). None was chosen on test pairs.
"""

from __future__ import annotations

from keras_models.core.errors import ConfigError
from keras_models.models import architectures

# Per family: (learning rate, epochs).
RECIPES = {
    "report": {"mlp": (1e-4, 500), "cnn": (1e-4, 100)},
    "fast": {"mlp": (1e-3, 50), "cnn": (1e-3, 25)},
}
# The recipes that build an architecture's report network, where the registry gives it one.
REPORT_NETWORK = ("report",)

# Levers that the ablations' rows and the recipes are made of.
EXPECTED_AUGMENT = {"comparer_type": "expected", "augment": True}
# The architecture and lr of results/archive/tuning/best_hparams.json (a random search scored on
# validation pairs).
TUNED = {"filters": (64, 128, 128), "hidden": (256,), "dropout": 0.1, "lr": 1.72e-3}
# The earlier ablation's row `stacked`: the tuned architecture with every lever that did not hurt.
STACKED = {**EXPECTED_AUGMENT, **TUNED, "swap": True, "lr_schedule": "cosine", "label_smoothing": 0.1}
# A one-cycle schedule peaking at 3e-3, and the extra regularisers of the small-model ablation.
ONECYCLE = {**EXPECTED_AUGMENT, "lr_schedule": "onecycle", "lr": 3e-3}
# The lighter augmentation of an earlier PyTorch run of the default cnn_aux: shifts of at most 1 px.
SHIFT1 = {"shift": 1, "rotation": 0.0}
# Nesterov SGD in place of Adam, with a one-cycle peak of 0.1 (a usual peak for SGD with batch norm).
NESTEROV = {"optimizer": "nesterov", "lr": 0.1}
# The levers of the earlier speedrun (row oc30_shift1_nesterov), and a classifier of the peer's
# LeNet's shape: one conv per block (16, then 32 filters) and 128 dense units.
SPEEDRUN_LEVERS = {**ONECYCLE, **SHIFT1, **NESTEROV}
C16 = {"filters": (16, 32), "convs": 1, "hidden": (128,)}

# The winners of results/archive/frontier.md (tests/test_frontier.py checks them against it). The
# sprint and the speedrun leave out the per-epoch test curve, as their rows did; best keeps it
# (training computes the same weights with or without it).
SPRINT = {**SPEEDRUN_LEVERS, **C16, "epochs": 20, "test_curve": False}  # row sprint_c16_e20
SPEEDRUN = {  # row c16x2_oc20_swap_shift1_nesterov
    **SPEEDRUN_LEVERS,
    "filters": (16, 32),
    "epochs": 20,
    "swap": True,
    "test_curve": False,
}
BEST = {**ONECYCLE, **SHIFT1, "epochs": 40, "swap": True}  # row oc40_swap_shift1
NAMED = {"stacked": STACKED, "sprint": SPRINT, "speedrun": SPEEDRUN, "best": BEST}
# What an architecture must be for the named recipes, the ablations' winners for cnn_aux: a conv
# body (they set filters and convs), one classifier shared by both digits (the parameter-free
# comparer and the augmentation act on its digits), and the auxiliary digit losses they were
# chosen with. Any registered architecture with these traits takes them.
NAMED_NEEDS = {"family": "cnn", "shared": True, "aux": True}
# The report's recipe with a stopping rule read on validation pairs only, fixed before its runs:
# 10% of the training pairs held out, stop after 10 epochs without a better validation compare
# accuracy and keep the best epoch (for cnn_cc, which overfits its compare loss in 100 epochs).
EARLY = {"validation_split": 0.1, "early_stopping": 10}
TRAIN_RECIPES = (*RECIPES, "report_early", *NAMED)


def describe_recipes() -> str:
    """RECIPES in words, for the commands' --help: "report: lr 0.0001, 500 epochs (MLP family) /
    100 (CNN family); ..."."""
    return "; ".join(
        f"{name}: lr {per[next(iter(per))][0]:g}, "
        + " / ".join(f"{epochs} epochs ({family.upper()} family)" for family, (_, epochs) in per.items())
        for name, per in RECIPES.items()
    )


def recipe_changes(recipe: str, model: str) -> dict:
    """The Config changes of a recipe for a registered architecture that has the traits it needs."""
    if recipe not in TRAIN_RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of {', '.join(TRAIN_RECIPES)}")
    arch = architectures.get(model)
    if recipe in NAMED:
        missing = [f"{k} {v}" for k, v in NAMED_NEEDS.items() if getattr(arch, k) != v]
        if missing:
            raise ConfigError(
                f"--recipe {recipe} is an ablation's winner for cnn_aux and needs {', '.join(missing)}, "
                f"which {model} has not; for {model} use --recipe fast or report"
            )
    if recipe == "stacked":  # the fast recipe's 25 epochs
        return {"epochs": RECIPES["fast"]["cnn"][1], **STACKED}
    if recipe in NAMED:
        return dict(NAMED[recipe])
    if recipe == "report_early":
        return {**recipe_changes("report", model), **EARLY}
    if arch.family not in RECIPES[recipe]:
        raise ConfigError(f"--recipe {recipe} has settings for the bodies {', '.join(RECIPES[recipe])}, not {model}'s")
    lr, epochs = RECIPES[recipe][arch.family]
    network = {"network": "report"} if recipe in REPORT_NETWORK and arch.report_body is not None else {}
    return {"lr": lr, "epochs": epochs, **network}
