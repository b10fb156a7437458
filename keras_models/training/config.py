"""`Config`: a run's model spec, training recipe and run settings (keras_models.training.settings),
with the rules that tie settings together.

The builder reads `cfg.spec`; a round trains by `cfg.recipe`; `cfg.run` says where and how the
run goes. `save_config` writes the three groups beside every model, and a run resumes only with
the same spec and recipe.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from keras_models.core.errors import ConfigError, RunError
from keras_models.models import architectures
from keras_models.training.rules import RULES
from keras_models.training.settings import FIELDS, GROUPS, ModelSpec, Recipe, RunSettings


def choices(name: str) -> tuple:
    """The choices declared for a setting, e.g. choices("strategy")."""
    return tuple(FIELDS[name][1].metadata["choices"])


@dataclass(frozen=True, init=False)
class Config:
    """Every setting of a run, in its three groups: the model spec (`spec`, what the builder
    reads), the training recipe (`recipe`) and the run settings (`run`). Each setting's name is
    declared once, in one group (keras_models.training.settings), so a setting is also given by
    name: `Config(model="cnn_aux", lr=1e-3)` and `cfg.replace(epochs=10)` put each in its group,
    checked against its declaration, and the rules that tie settings together are checked
    whenever a Config is made. It is saved as its groups (`to_groups`) everywhere it is saved:
    config.json, results.json and an export's model card.

        >>> cfg = Config(model="cnn_aux", lr=1e-3).replace(epochs=10)
        >>> cfg.spec.model, cfg.recipe.lr, cfg.run.rounds  # the three groups
    """

    spec: ModelSpec
    recipe: Recipe
    run: RunSettings

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
        """{"spec": {...}, "recipe": {...}, "run": {...}}: how a Config is saved."""
        return {g: as_json(getattr(self, g)) for g in GROUPS}

    def to_dict(self) -> dict:
        """Every setting by name, one flat dict (a view for reading, never saved)."""
        return {k: v for part in self.to_groups().values() for k, v in part.items()}

    @classmethod
    def from_groups(cls, groups: dict) -> Config:
        """A Config saved by `to_groups`; a group or setting it lacks (a file from before that
        setting existed) keeps its default. Files written before 2026-12-06 hold the settings
        flat, by name, and may name the study's levers, settings then (RETIRED): they are read
        as such when no lever was used. Anything else is one ConfigError line."""
        if not isinstance(groups, dict):
            raise ConfigError(f"settings must be a JSON object, not {type(groups).__name__}")
        groups = without_retired(groups)
        if groups and not set(groups) & set(GROUPS) and set(groups) <= set(FIELDS):
            return cls(**groups)  # the flat form of earlier files
        strays = sorted(set(groups) - set(GROUPS))
        if strays:
            raise ConfigError(
                f"unknown config groups: {', '.join(strays)} (written by another version of the project?)"
            )
        settings = {}
        for group, values in groups.items():
            if not isinstance(values, dict):
                raise ConfigError(f"config group {group!r} must be a JSON object, not {type(values).__name__}")
            unknown = sorted(k for k in values if FIELDS.get(k, (None,))[0] != group)
            if unknown:
                raise ConfigError(f"unknown {group} settings: {', '.join(unknown)} (written by another version?)")
            settings.update(values)
        return cls(**settings)


# The study's levers, settings in files written before 2026-12-06, with the values that meant
# "not used"; they are levers of experiments/levers.py now (training.levers).
RETIRED = {
    "elastic": False,
    "loss_weighting": "fixed",
    "ema": False,
    "repair": False,
    "weight_decay": 0.0,
    "pretrain_epochs": 0,
    "teachers": 0,
    "distill_temperature": 4.0,
}


def without_retired(groups: dict) -> dict:
    """`groups` (or a flat dict of earlier files) less the retired settings at their unused
    values; a file that used one is refused, naming it."""

    def clean(part: dict) -> dict:
        used = sorted(k for k in part if k in RETIRED and part[k] != RETIRED[k])
        if used:
            raise ConfigError(
                f"uses {', '.join(used)}, a study lever that is no setting now (experiments/levers.py); "
                "train it again with the lever"
            )
        return {k: v for k, v in part.items() if k not in RETIRED}

    if all(isinstance(v, dict) for v in groups.values()) and set(groups) <= set(GROUPS):
        return {g: clean(part) for g, part in groups.items()}
    return clean(groups)


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
        before = Config.from_groups(old["config"])
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
    if cfg.run.out:
        check_writable(cfg.run.out, "--out")
    if cfg.run.export and chief:
        check_writable(cfg.run.export_dir, "--export-dir")


def check_folder(cfg: Config) -> None:
    """Before anything is trained or touched: a run folder that holds a config.json (written
    first by every run) may only be resumed with the same settings."""
    path = Path(cfg.run.out) / "config.json"
    if not path.is_file():
        return
    check_resumable({"config": read_run_file(path)}, cfg, Path(cfg.run.out))


def default_out(model: str) -> str:
    """The run folder when --out is not given: a new one per run, made now, so that runs
    started in the same second (other seeds, other processes) never share one."""
    from keras_models.core.files import claim_folder

    return str(claim_folder("runs", f"{model}-{datetime.now():%Y%m%d-%H%M%S}"))


def config_mflops(cfg: Config) -> float:
    """MFLOP per pair of the model `cfg` trains: one classifier pass per member and view."""
    from keras_models.models.builder import TTA_VIEWS, build_model
    from keras_models.models.cost import flops_per_pair

    views = len(TTA_VIEWS) if cfg.recipe.tta else 1
    return views * cfg.recipe.members * flops_per_pair(build_model(cfg.spec)) / 1e6


def card_config(card: dict) -> Config | None:
    """The Config of the model an export holds, from its model card (metadata.json); None for an
    export without one. Cards written before 2026-12-06 hold `spec` and `recipe` beside each other."""
    if "config" in card:
        return Config.from_groups(card["config"])
    if "spec" in card:
        return Config.from_groups({"spec": card["spec"], "recipe": card.get("recipe", {})})
    return None


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(json.dumps(cfg.to_groups(), indent=2) + "\n")


def load_config(path: str | Path) -> Config:
    """A run folder's config.json; a file that is not one is one RunError line."""
    try:
        return Config.from_groups(read_run_file(Path(path)))
    except ConfigError as e:
        raise RunError(f"{path}: holds settings this version cannot read ({e})") from None
