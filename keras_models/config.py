"""One typed configuration that flows from the command line into the builders.

`Config` holds every setting of a run. The CLIs build it with `add_config_args` and
`config_from_args`; the builders, the trainer and the tuner read it; `save_config` writes it
beside every model so that a run can be rebuilt exactly.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .errors import ConfigError, RunError

PAIR_SHAPE = (2, 14, 14)  # the input `pair` of every model, and of the serving signature
MODELS = ("mlp", "cc", "cc_aux", "cnn", "cnn_cc", "cnn_aux")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
COMPARERS = ("learned", "expected")
LOSS_WEIGHTINGS = ("fixed", "learned")
SCHEDULES = ("constant", "cosine", "onecycle")
OPTIMIZERS = ("adam", "nesterov")

# Far beyond any round count, so that members never share a seed with another round.
MEMBER_SEED_STRIDE = 1000
# numpy's legacy seeding (used by keras.utils.set_random_seed) takes seeds below 2**32.
MAX_SEED = 2**32 - 1
# The augmentation's largest shift and rotation: half the 14-px image moves a digit out of it.
MAX_SHIFT = 6
MAX_ROTATION = 180.0
# Test-time augmentation (`tta`), fixed before it was first scored: each pair also seen moved
# one pixel up, down, left and right (the training shifts reach 2 px).
NO_TTA = ((0, 0),)
TTA_VIEWS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


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


def output_names(model: str) -> tuple[str, ...]:
    """The outputs of one of the six models, by its name."""
    return ("compare", "digit1", "digit2") if is_shared(model) else ("compare",)


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
    lr_schedule: str = "constant"  # "cosine": decays to 0 over the round; "onecycle": rises to lr, then decays
    optimizer: str = "adam"  # "nesterov": SGD with Nesterov momentum 0.9
    ema: bool = False  # evaluate and export an exponential moving average of the weights (momentum 0.99)
    augment: bool = False  # random shifts (up to `shift` px) and rotations (up to `rotation` degrees) of each digit
    shift: int = 2  # largest shift of --augment, in pixels; 0: no shifts
    rotation: float = 10.0  # largest rotation of --augment, in degrees; 0: no rotations
    elastic: bool = False  # elastic distortions of each training digit (layers.ElasticDistortion)
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
    # Knowledge distillation: per round, first train this many teachers with the same settings
    # (seeds after the members'), then the model learns from their digit distributions too.
    teachers: int = 0
    distill_temperature: float = 4.0  # the softmax temperature of the teachers' and student's digits
    validation_split: float = 0.0
    dev_pairs: int = 0  # > 0: also score this many pairs of training images outside the round's pairs
    test_curve: bool = True  # evaluate the test pairs after every epoch (history.csv, curves.png)
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
        check_types(self)
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
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.optimizer != "adam" and self.weight_decay:
            raise ConfigError("--weight-decay is AdamW's decay; it needs --optimizer adam")
        if (self.augment or self.elastic or self.comparer_type != "learned") and not is_shared(self.model):
            raise ConfigError("--augment, --elastic and --comparer-type expected need a weight-sharing model")
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
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ConfigError(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.member < 0:
            raise ConfigError(f"member must be >= 0, got {self.member}")
        if self.members < 1:
            raise ConfigError(f"members must be a positive integer, got {self.members}")
        if self.members > 1 and self.strategy == "multiworker":
            raise ConfigError("--members trains its members one after another in one process; with "
                              "--strategy multiworker train one --member per run")
        if not 0 <= self.shift <= MAX_SHIFT:
            raise ConfigError(f"shift must be an integer in [0, {MAX_SHIFT}] pixels, got {self.shift}")
        if not 0.0 <= self.rotation <= MAX_ROTATION:
            raise ConfigError(f"rotation must be in [0, {MAX_ROTATION:g}] degrees, got {self.rotation}")
        if self.dev_pairs < 0:
            raise ConfigError(f"dev pairs must be >= 0, got {self.dev_pairs}")
        if self.pretrain_epochs < 0:
            raise ConfigError(f"pretrain epochs must be >= 0, got {self.pretrain_epochs}")
        if self.pretrain_epochs and not is_shared(self.model):
            raise ConfigError("--pretrain-epochs pre-trains the digit classifier; it needs a weight-sharing model")
        if not (self.backup_interval >= 0 and math.isfinite(self.backup_interval)):
            raise ConfigError(f"backup interval must be >= 0 seconds, got {self.backup_interval}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive finite number, got {self.lr}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.teachers < 0:
            raise ConfigError(f"teachers must be >= 0, got {self.teachers}")
        if self.teachers and not is_shared(self.model):
            raise ConfigError("--teachers distils the digit classifier; it needs a weight-sharing model")
        if self.teachers and self.strategy in ("mirrored", "multiworker"):
            raise ConfigError("--teachers trains its teachers and the model in one process; use --strategy default")
        if not (self.distill_temperature > 0 and math.isfinite(self.distill_temperature)):
            raise ConfigError(f"distill temperature must be a positive finite number, got {self.distill_temperature}")
        last = self.seed + self.rounds - 1 + MEMBER_SEED_STRIDE * (self.member + self.members - 1 + self.teachers)
        if last > MAX_SEED:
            raise ConfigError(f"seeds must stay below 2**32: seed {self.seed} with {self.rounds} rounds, members "
                              f"{self.member}-{self.member + self.members - 1} and {self.teachers} teachers reaches {last}")
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


# What each annotation of Config accepts; a file (best_hparams.json, config.json) may hold anything.
_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "dict": dict, "tuple[int, ...]": (list, tuple)}


def check_types(cfg: Config) -> None:
    """Each setting of the type its field declares, before any arithmetic on it."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        kinds = [k.strip() for k in f.type.split("|")]
        if value is None and "None" in kinds:
            continue
        expected = tuple(t for k in kinds if k in _TYPES for t in (_TYPES[k] if isinstance(_TYPES[k], tuple) else (_TYPES[k],)))
        wrong = not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected)
        if not wrong and isinstance(value, (list, tuple)):
            wrong = not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if wrong:
            raise ConfigError(f"{f.name} must be {' or '.join(kinds)}, got {value!r}")


# Settings that may change between a run and its resumption without changing what it computes.
RESUMABLE_FIELDS = {"rounds", "quiet", "tensorboard", "export", "export_dir", "out", "extra", "strategy",
                    "backup_interval", "steps_per_execution"}


def check_resumable(old: dict, cfg: Config, out: Path, instead: str = "use another --out") -> None:
    """`old` (a results.json or {"config": ...}) may be resumed with `cfg`, or a RunError
    names the settings that differ."""
    new, defaults = cfg.to_dict(), Config().to_dict()
    # A setting the old run did not record yet (an older version of Config) had its default.
    old_cfg = {**defaults, **old.get("config", {})}
    diff = sorted(k for k in new if k not in RESUMABLE_FIELDS and old_cfg.get(k) != new[k])
    if diff:
        raise RunError(f"{out}: holds a run with other settings ({', '.join(diff)}); {instead}")


def check_folder(cfg: Config) -> None:
    """Before anything is trained or touched: a run folder that holds a config.json (written
    first by every run) may only be resumed with the same settings."""
    path = Path(cfg.out) / "config.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except ValueError:
        raise RunError(f"{path}: not valid JSON; move it away to start over") from None
    check_resumable({"config": old}, cfg, Path(cfg.out))


def default_out(cfg: Config) -> str:
    """The run folder when --out is not given: a new one per run, made now, so that runs
    started in the same second (other seeds, other processes) never share one."""
    from .files import claim_folder

    return str(claim_folder("runs", f"{cfg.model}-{datetime.now():%Y%m%d-%H%M%S}"))


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")


def load_config(path: str | Path) -> Config:
    return Config.from_dict(json.loads(Path(path).read_text()))
