"""`Config`: a run's model spec, training recipe and run settings (keras_models.training.settings),
with the rules that tie settings together.

The builder reads `cfg.spec`; a round trains by `cfg.recipe`; `cfg.run` says where and how the
run goes. `save_config` writes the three groups beside every model, and a run resumes only with
the same spec and recipe.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path

from keras_models.core.errors import ConfigError, RunError
from keras_models.models import architectures
from keras_models.training.settings import FIELDS, GROUPS, MAX_SEED, ModelSpec, Recipe, RunSettings

# Far beyond any round count, so that members never share a seed with another round.
MEMBER_SEED_STRIDE = 1000


def choices(name: str) -> tuple:
    """The choices declared for a setting, e.g. choices("strategy")."""
    return tuple(FIELDS[name][1].metadata["choices"])


def last_seed(c: Config) -> int:
    r = c.recipe
    return r.seed + c.run.rounds - 1 + MEMBER_SEED_STRIDE * (r.member + r.members - 1 + r.teachers)


# What no single declaration can say: a message for each combination that cannot train.
RULES = (
    (
        lambda c: c.recipe.optimizer != "adam" and c.recipe.weight_decay,
        "--weight-decay is AdamW's decay; it needs --optimizer adam",
    ),
    (
        lambda c: c.spec.comparer_type != "learned" and not c.arch.shared,
        "--comparer-type expected compares the digit distributions; it needs a weight-sharing model",
    ),
    (
        lambda c: c.recipe.label_smoothing and not c.arch.shared,
        "--label-smoothing smooths the digit targets; it needs a weight-sharing model",
    ),
    (lambda c: c.spec.augment and not c.arch.shared, "--augment needs a weight-sharing model"),
    (lambda c: c.spec.elastic and not c.arch.shared, "--elastic needs a weight-sharing model"),
    (
        lambda c: c.recipe.teachers and not c.arch.shared,
        "--teachers distils the digit classifier; it needs a weight-sharing model",
    ),
    (
        lambda c: c.recipe.teachers and c.run.strategy in ("mirrored", "multiworker"),
        "--teachers trains its teachers and the model in one process; use --strategy default",
    ),
    (
        lambda c: c.spec.loss_weighting == "learned" and not c.arch.aux,
        "--loss-weighting learned weighs the compare and digit losses; it needs an aux model",
    ),
    (
        lambda c: c.recipe.pretrain_epochs and not c.arch.shared,
        "--pretrain-epochs pre-trains the digit classifier; it needs a weight-sharing model",
    ),
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
        lambda c: c.run.stack > 1 and not stackable(c),
        "--stack trains one plain model per round on one device: it cannot be combined with --members, --teachers, "
        "--tta, --pretrain-epochs, --validation-split, --repair, --rotation, --loss-weighting learned, "
        "--classifier-softmax batch, --workers, --ray-address or --strategy mirrored / multiworker",
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
            f"{c.recipe.member}-{c.recipe.member + c.recipe.members - 1} and {c.recipe.teachers} teachers "
            f"reaches {last_seed(c)}"
        ),
    ),
)


class Config:
    """Every setting of a run. `Config(model="cnn_aux", lr=1e-3)` sets settings by name, each
    checked against its declaration; the rest keep their defaults.

        >>> cfg = Config(model="cnn_aux", lr=1e-3).replace(epochs=10)
        >>> cfg.spec.model, cfg.recipe.lr, cfg.run.rounds  # the three groups
    """

    __slots__ = ("spec", "recipe", "run")

    def __init__(
        self, spec: ModelSpec | None = None, recipe: Recipe | None = None, run: RunSettings | None = None, **settings
    ):
        unknown = sorted(set(settings) - set(FIELDS))
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(unknown)}")
        parts = {"spec": spec or ModelSpec(), "recipe": recipe or Recipe(), "run": run or RunSettings()}
        for group in GROUPS:
            changes = {k: v for k, v in settings.items() if FIELDS[k][0] == group}
            object.__setattr__(self, group, dataclasses.replace(parts[group], **changes) if changes else parts[group])
        for broken, message in RULES:
            if broken(self):
                raise ConfigError(message(self) if callable(message) else message)

    def __setattr__(self, name, value):
        raise AttributeError("Config is immutable; use replace()")

    def __eq__(self, other):
        return isinstance(other, Config) and self.to_groups() == other.to_groups()

    def __repr__(self):
        return f"Config({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    @property
    def arch(self) -> architectures.Architecture:
        return self.spec.arch

    @property
    def num_epochs(self) -> int:
        """The recipe's epochs, or the architecture's where the recipe leaves them open."""
        return self.recipe.epochs if self.recipe.epochs is not None else self.arch.epochs

    def replace(self, **changes) -> Config:
        return Config(self.spec, self.recipe, self.run, **changes)

    def to_groups(self) -> dict:
        """{"spec": {...}, "recipe": {...}, "run": {...}}, as config.json holds them."""
        return {g: as_json(getattr(self, g)) for g in GROUPS}

    def to_dict(self) -> dict:
        """Every setting by name, one flat dict (results.json's `config`)."""
        return {k: v for part in self.to_groups().values() for k, v in part.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        """The flat dict of to_dict, or the groups of to_groups; a setting it lacks (a file from
        before that setting existed) keeps its default."""
        if set(d) <= set(GROUPS) and all(isinstance(v, dict) for v in d.values()):
            d = {k: v for part in d.values() for k, v in part.items()}
        unknown = sorted(set(d) - set(FIELDS))
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)} (written by another version of the project?)")
        return cls(**d)


def as_json(part) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(part).items()}


def read_run_file(path: Path) -> dict:
    """A run folder's config.json or results.json as the JSON object it must be; anything else
    is one RunError line that names the file and how to start over."""
    try:
        found = json.loads(Path(path).read_text())
    except ValueError:
        raise RunError(f"{path}: not valid JSON; move it away to start over") from None
    if not isinstance(found, dict):
        raise RunError(f"{path}: holds {type(found).__name__}, not a run's JSON object; move it away to start over")
    return found


def check_results(results: dict, path: Path, rounds: int) -> None:
    """results.json as a run writes it: its rounds a list of objects, each with its round number
    (below `rounds`), status and seconds; anything else is one RunError line."""
    entries = results.get("rounds")
    if not isinstance(entries, list):
        raise RunError(f"{path}: its `rounds` is not a list of rounds; move it away to start over")
    for entry in entries:
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("round"), int)
            and not isinstance(entry.get("round"), bool)
            and 0 <= entry["round"] < rounds
            and entry.get("status") in ("ok", "failed")
            and isinstance(entry.get("seconds"), (int, float))
        )
        if not ok:
            raise RunError(
                f"{path}: holds a round this run cannot read ({json.dumps(entry)[:80]}); move it away to start over"
            )


def check_resumable(old: dict, cfg: Config, out: Path, instead: str = "use another --out") -> None:
    """`old` (a results.json or {"config": ...}) may be resumed with `cfg` if it holds the same
    model spec and recipe; else a RunError names the settings that differ."""
    if not isinstance(old.get("config"), dict) or not old["config"]:
        raise RunError(f"{out}: holds no run's settings; {instead}, or move the folder away to start over")
    try:
        before = Config.from_dict(old["config"])
    except ConfigError as e:
        raise RunError(f"{out}: holds a run this version cannot resume ({e}); {instead}") from None
    then, now = before.to_groups(), cfg.to_groups()
    diff = sorted(k for g in ("spec", "recipe") for k in now[g] if then[g][k] != now[g][k])
    if diff:
        raise RunError(f"{out}: holds a run with other settings ({', '.join(diff)}); {instead}")


def check_before_training(cfg: Config, images, chief: bool = True) -> None:
    """What a run needs of its (train, test) images and its folders, checked before TensorFlow
    loads and before anything is written: a mistake fails fast, in one line, and a folder
    refused after a 15-minute round would cost the round."""
    from keras_models.core.files import check_writable
    from keras_models.data.images import require_images

    recipe, (train_images, test_images) = cfg.recipe, images
    for imgs in (train_images, test_images):
        require_images(len(imgs.images), recipe.pairs, imgs.source)
    outside = len(train_images.images) - 2 * recipe.pairs
    if recipe.dev_pairs:
        require_images(outside, recipe.dev_pairs, f"{train_images.source} outside the pairs")
    if recipe.pretrain_epochs and not outside:
        raise ConfigError(f"{train_images.source}: no training images outside the {recipe.pairs} pairs to pre-train on")
    if cfg.run.out:
        check_writable(cfg.run.out, "--out")
    if cfg.run.export and chief:
        check_writable(cfg.run.export_dir, "--export-dir")


def stackable(c) -> bool:
    """Whether a run's rounds can train stacked (training.stacked): plain models, one each."""
    r = c.recipe
    alone = r.members == 1 and not (r.teachers or r.tta or r.pretrain_epochs or r.validation_split or r.repair)
    spec = not (c.spec.augment and c.spec.rotation) and c.spec.loss_weighting == "fixed"
    spec = spec and c.spec.classifier_softmax == "classes"
    run = c.run.workers == 1 and not c.run.ray_address and c.run.strategy in ("auto", "default")
    return alone and spec and run


def check_folder(cfg: Config) -> None:
    """Before anything is trained or touched: a run folder that holds a config.json (written
    first by every run) may only be resumed with the same settings."""
    path = Path(cfg.run.out) / "config.json"
    if not path.is_file():
        return
    check_resumable({"config": read_run_file(path)}, cfg, Path(cfg.run.out))


def default_out(cfg: Config) -> str:
    """The run folder when --out is not given: a new one per run, made now, so that runs
    started in the same second (other seeds, other processes) never share one."""
    from keras_models.core.files import claim_folder

    return str(claim_folder("runs", f"{cfg.spec.model}-{datetime.now():%Y%m%d-%H%M%S}"))


def config_mflops(cfg: Config) -> float:
    """MFLOP per pair of the model `cfg` trains: one classifier pass per member and view."""
    from keras_models.models.builder import TTA_VIEWS, build_model
    from keras_models.models.cost import flops_per_pair

    views = len(TTA_VIEWS) if cfg.recipe.tta else 1
    return views * cfg.recipe.members * flops_per_pair(build_model(cfg.spec)) / 1e6


def card_config(card: dict) -> Config | None:
    """The Config of the model an export holds, from its model card (metadata.json): its spec and
    recipe (exports written before those were kept apart hold one flat `config`); None for an
    export without a card."""
    if "spec" in card:
        return Config.from_dict({"spec": card["spec"], "recipe": card.get("recipe", {})})
    return Config.from_dict(card["config"]) if card.get("config") else None


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(json.dumps(cfg.to_groups(), indent=2) + "\n")


def load_config(path: str | Path) -> Config:
    """A run folder's config.json; a file that is not one is one RunError line."""
    try:
        return Config.from_dict(read_run_file(Path(path)))
    except ConfigError as e:
        raise RunError(f"{path}: holds settings this version cannot read ({e})") from None
