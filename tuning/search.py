"""A keras-tuner search over depth and width, and its report: best_hparams.json, trials.md, and
a plot of the objective against depth and width. The test pairs are never scored here.

The objective is the compare accuracy on a validation split of one round's training pairs, or,
with dev pairs (`--dev-pairs N`), on N pairs of the images that the round's pairs leave out:
each trial then trains on all of a round's pairs, once per execution, each execution on another
round (`--executions`), and scores the mean. A cost limit (`--max-mflop`) fails the trials whose
model costs more per pair, before they train.

Distributed: with KERASTUNER_TUNER_ID / KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT set,
the chief serves the oracle and the workers run trials; only the chief writes the report,
after every trial has ended (a worker's view of the best trial is only a snapshot).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras_tuner as kt

from keras_models.core.errors import ConfigError, RunError
from keras_models.core.files import atomic_write_json
from keras_models.data.images import load_data, require_images
from keras_models.training.config import Config, check_resumable
from keras_models.training.rounds import RoundData

from .hypermodels import hypermodel_for
from .report import objective_of, write_report

MAX_FAILED_TRIALS = 3


class TimedTrials:
    """Mixin over keras-tuner's `run_trial`: writes each trial's seconds and the tuner that ran
    it into its trial folder, for the report (keras-tuner records neither)."""

    def run_trial(self, trial, *args, **kwargs):
        start = time.perf_counter()
        result = super().run_trial(trial, *args, **kwargs)
        info = {"seconds": round(time.perf_counter() - start, 2), "tuner_id": self.tuner_id}
        atomic_write_json(Path(self.get_trial_dir(trial.trial_id)) / "run_info.json", info)
        return result


class RandomSearch(TimedTrials, kt.RandomSearch):
    pass


class BayesianOptimization(TimedTrials, kt.BayesianOptimization):
    pass


class Hyperband(TimedTrials, kt.Hyperband):
    pass


TUNERS = {"random": RandomSearch, "bayesian": BayesianOptimization, "hyperband": Hyperband}


def is_chief_oracle() -> bool:
    return os.environ.get("KERASTUNER_TUNER_ID", "chief") == "chief"


@dataclass(frozen=True)
class Search:
    """What a search is: its tuner, trials, epochs per trial and folder, and with dev pairs the
    rounds each trial trains on and the cost limit."""

    kind: str = "random"
    max_trials: int = 10
    epochs: int = 10
    directory: str = "tuner_runs"
    project: str | None = None  # default <model>-<kind>
    executions: int = 1
    max_mflop: float | None = None

    def folder(self, base: Config) -> Path:
        return Path(self.directory) / (self.project or f"{base.spec.model}-{self.kind}")


def make_tuner(plan: Search, hypermodel, base: Config, strategy=None):
    if plan.kind not in TUNERS:
        raise RunError(f"unknown tuner {plan.kind!r}")
    # Trials over a cost limit fail at once and may come in a row: with a limit, the search
    # ends after its trials, whatever failed.
    failures = plan.max_trials + 1 if plan.max_mflop is not None else MAX_FAILED_TRIALS
    common = dict(
        objective=kt.Objective(objective_of(base), direction="max"),
        directory=plan.directory,
        project_name=plan.folder(base).name,
        overwrite=False,
        seed=base.recipe.seed,
        max_consecutive_failed_trials=failures,
    )
    if strategy is not None:
        common["distribution_strategy"] = strategy
    if plan.kind == "hyperband":
        # Hyperband sizes its own brackets from max_epochs; max_trials does not apply.
        return TUNERS[plan.kind](hypermodel, max_epochs=plan.epochs, factor=3, **common)
    return TUNERS[plan.kind](hypermodel, max_trials=plan.max_trials, **common)


def claim_search(folder: Path, base: Config, epochs: int, executions: int = 1, max_mflop: float | None = None) -> None:
    """keras-tuner reloads the trials in its folder whatever settings trained them: a folder
    of another search (other epochs, data or fixed settings) is refused in one line, and the
    settings are recorded in search.json first."""
    path = folder / "search.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            raise RunError(f"{path}: not valid JSON; move it away or use another --directory") from None
        instead = "use another --directory or --project-name"
        search = {"epochs": epochs, "executions": executions, "max_mflop": max_mflop}
        # Searches recorded before executions and the cost limit existed had 1 and none.
        differ = [k for k, v in search.items() if old.get(k, {"executions": 1}.get(k)) != v]
        if differ:
            raise RunError(f"{folder}: holds a search with other settings ({', '.join(differ)}); {instead}")
        check_resumable(old, base, folder, instead)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        path, {"config": base.to_groups(), "epochs": epochs, "executions": executions, "max_mflop": max_mflop}
    )


def check_search(base: Config, plan: Search) -> None:
    if plan.executions < 1:
        raise ConfigError(f"executions must be a positive integer, got {plan.executions}")
    if plan.executions > 1 and not base.recipe.dev_pairs:
        raise ConfigError(
            "--executions trains each trial on several rounds and scores their dev pairs; it needs --dev-pairs"
        )
    if base.recipe.dev_pairs and plan.kind == "hyperband":
        raise ConfigError("--dev-pairs scores whole trials; hyperband resumes trials by epochs: use random or bayesian")
    if plan.max_mflop is not None and not (plan.max_mflop > 0 and math.isfinite(plan.max_mflop)):
        raise ConfigError(f"the cost limit must be a positive number of MFLOP, got {plan.max_mflop}")


def search(base: Config, plan: Search, log=print) -> dict | None:
    """Run (or resume) the search; on the chief, write the report and return best_hparams."""
    import tensorflow as tf

    from keras_models.training.distribute import get_strategy

    check_search(base, plan)
    tf.get_logger().setLevel("ERROR")
    images = load_data(base.recipe.data, base.recipe.test_data)
    if base.recipe.dev_pairs:
        require_images(
            len(images[0].images) - 2 * base.recipe.pairs,
            base.recipe.dev_pairs,
            f"{images[0].source} outside the pairs",
        )
    if is_chief_oracle():
        claim_search(plan.folder(base), base, plan.epochs, plan.executions, plan.max_mflop)
    strategy = get_strategy(base.run.strategy)
    replicated = strategy.num_replicas_in_sync > 1
    if base.recipe.dev_pairs:
        # Each execution trains on all of another round's pairs and scores that round's dev pairs.
        rounds = [RoundData.draw(base.replace(validation_split=0.0), images, i) for i in range(plan.executions)]
        pairs, dev = base.recipe.pairs, base.recipe.dev_pairs
        what = f"{plan.executions} round(s) of {pairs} training and {dev} dev pairs per trial"
    else:
        rounds = [RoundData.draw(base.replace(validation_split=base.recipe.validation_split or 0.2), images, 0)]
        what = f"{len(rounds[0].train)} training and {len(rounds[0].val)} validation pairs"
    hypermodel = hypermodel_for(base, rounds, sync_bn=replicated, max_mflop=plan.max_mflop)
    tuner = make_tuner(plan, hypermodel, base, strategy if replicated else None)
    limit = f"; at most {plan.max_mflop:g} MFLOP per pair" if plan.max_mflop is not None else ""
    size = f"max_epochs {plan.epochs}" if plan.kind == "hyperband" else f"max_trials {plan.max_trials}"
    log(f"tuning {base.spec.model} with {plan.kind} search ({size}); {what}{limit}")
    try:
        tuner.search(epochs=plan.epochs, verbose=0 if base.run.quiet else 1)
    except RuntimeError as e:
        # keras-tuner ends a search after max_consecutive_failed_trials with a RuntimeError
        # that carries the last trial's traceback; its last line is the reason.
        if "consecutive failures" not in str(e):
            raise
        last = str(e).strip().splitlines()[-1]
        raise RunError(f"{plan.folder(base)}: {MAX_FAILED_TRIALS} trials failed in a row; the last: {last}") from None
    if not is_chief_oracle():
        return None
    return write_report(tuner, base, plan, log)
