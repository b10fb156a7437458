"""The rules that tie several settings of a Config together: what no single declaration
(keras_models.training.settings) can say, each with the one-line message of a combination that
cannot train. `Config` checks them all when it is made."""

from __future__ import annotations

from keras_models.training.settings import MAX_SEED

# Far beyond any round count, so that members never share a seed with another round.
MEMBER_SEED_STRIDE = 1000


def last_seed(c, extra_fits: int = 0) -> int:
    """The highest seed a run draws: its last round's last member (`extra_fits` more per round
    for the models a lever fits beside them, such as teachers)."""
    r = c.recipe
    return r.seed + c.run.rounds - 1 + MEMBER_SEED_STRIDE * (r.member + r.members - 1 + extra_fits)


# What no single declaration can say: a message for each combination that cannot train.
RULES = (
    (
        lambda c: c.spec.comparer_type != "learned" and not c.arch.shared,
        "--comparer-type expected compares the digit distributions; it needs a weight-sharing model",
    ),
    (
        lambda c: c.recipe.label_smoothing and not c.arch.shared,
        "--label-smoothing smooths the digit targets; it needs a weight-sharing model",
    ),
    (lambda c: c.spec.augment and not c.arch.shared, "--augment needs a weight-sharing model"),
    (
        lambda c: c.recipe.early_stopping and not c.recipe.validation_split,
        "--early-stopping watches the validation pairs; it needs --validation-split",
    ),
    (
        lambda c: c.recipe.members > 1 and c.run.strategy == "multiworker",
        "--members trains its members one after another in one process; with --strategy multiworker train one "
        "--member per run",
    ),
    (
        lambda c: (c.run.workers > 1 or c.run.ray_address) and c.run.strategy in ("mirrored", "multiworker"),
        "--workers and --ray-address train rounds as Ray tasks of one device each; they cannot be combined "
        "with --strategy mirrored or multiworker",
    ),
    (
        lambda c: c.run.stack > 1 and stack_refusals(c),
        lambda c: (
            "--stack trains one plain model per round on one device: it cannot be combined with "
            + ", ".join(stack_refusals(c))
        ),
    ),
    (
        lambda c: c.spec.classifier_softmax == "batch" and c.run.export,
        "--classifier-softmax batch answers a pair by the pairs beside it, so its model is never exported; add "
        "--no-export",
    ),
    (
        lambda c: c.spec.classifier_softmax == "batch" and c.recipe.tta,
        "--tta scores a pair's shifted views in one batch, which --classifier-softmax batch would mix",
    ),
    (
        lambda c: last_seed(c) > MAX_SEED,
        lambda c: (
            f"seeds must stay below 2**32: seed {c.recipe.seed} with {c.run.rounds} rounds, members "
            f"{c.recipe.member}-{c.recipe.member + c.recipe.members - 1} reaches {last_seed(c)}"
        ),
    ),
)


def not_one_plain_model(c) -> list[str]:
    """The settings that make a round more than one plain model, trained on one device and
    holding nothing but weights that the round sets: several members or test-time views around
    it, rotations (whose fill is a constant of Keras' layer), several devices. A run's rounds
    share a traced step only without them and without levers (fitting.reusable), and train
    stacked only without them (`stack_refusals`)."""
    r, s = c.recipe, c.spec
    found = {
        "--members": r.members > 1,
        "--tta": r.tta,
        "--rotation": s.augment and s.rotation,
        "--strategy mirrored / multiworker": c.run.strategy in ("mirrored", "multiworker"),
    }
    return [flag for flag, present in found.items() if present]


def stack_refusals(c) -> list[str]:
    """What --stack cannot combine with: beyond `not_one_plain_model`, what is not the same
    plain model in every round of a stack (a validation split, a softmax over the batch, which
    the stack's scoring would mix) or trains the rounds another way (--workers, --ray-address).
    Levers are refused where the run starts (training.run)."""
    r, s = c.recipe, c.spec
    found = {
        "--validation-split": r.validation_split,
        "--classifier-softmax batch": s.classifier_softmax == "batch",
        "--workers": c.run.workers > 1,
        "--ray-address": c.run.ray_address,
    }
    return not_one_plain_model(c) + [flag for flag, present in found.items() if present]
