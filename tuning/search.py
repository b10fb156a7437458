"""A keras-tuner search over depth and width on a validation split of the training pairs, and
its report: best_hparams.json, trials.md, and a plot of validation accuracy against depth and
width. The test pairs are never drawn here.

Distributed: with KERASTUNER_TUNER_ID / KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT set,
the chief serves the oracle and the workers run trials; only the chief writes the report,
after every trial has ended (a worker's view of the best trial is only a snapshot).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras_tuner as kt
import numpy as np

from keras_models.config import Config, check_resumable, family, output_names
from keras_models.data import draw_round, load_data
from keras_models.errors import RunError
from keras_models.files import atomic_write_json, atomic_write_text
from keras_models.pipeline import pixel_stats, split_validation

from .hypermodels import hypermodel_for

OBJECTIVE = "val_compare_accuracy"
TUNERS = {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization, "hyperband": kt.Hyperband}
CONFIG_KEYS = ("model", "hidden", "comparer", "filters", "dropout", "lr")
MAX_FAILED_TRIALS = 3


class TimedTrials:
    """Mixin: writes each trial's seconds and the tuner that ran it into its trial folder, for
    the report (keras-tuner records neither)."""

    def run_trial(self, trial, *args, **kwargs):
        start = time.perf_counter()
        result = super().run_trial(trial, *args, **kwargs)
        info = {"seconds": round(time.perf_counter() - start, 2), "tuner_id": self.tuner_id}
        atomic_write_json(Path(self.get_trial_dir(trial.trial_id)) / "run_info.json", info)
        return result


def is_chief_oracle() -> bool:
    return os.environ.get("KERASTUNER_TUNER_ID", "chief") == "chief"


def make_tuner(kind: str, hypermodel, max_trials: int, epochs: int, directory: str, project: str,
               seed: int, strategy=None):
    if kind not in TUNERS:
        raise RunError(f"unknown tuner {kind!r}")
    base = TUNERS[kind]
    cls = type(f"Timed{base.__name__}", (TimedTrials, base), {})
    common = dict(objective=kt.Objective(OBJECTIVE, direction="max"), directory=directory, project_name=project,
                  overwrite=False, seed=seed, max_consecutive_failed_trials=MAX_FAILED_TRIALS)
    if strategy is not None:
        common["distribution_strategy"] = strategy
    if kind == "hyperband":
        # Hyperband sizes its own brackets from max_epochs; max_trials does not apply.
        return cls(hypermodel, max_epochs=epochs, factor=3, **common)
    return cls(hypermodel, max_trials=max_trials, **common)


def claim_search(folder: Path, base: Config, epochs: int) -> None:
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
        if old.get("epochs") != epochs:
            raise RunError(f"{folder}: holds a search with other settings (epochs); {instead}")
        check_resumable(old, base, folder, instead)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"config": base.to_dict(), "epochs": epochs})


def search(base: Config, kind: str, max_trials: int, epochs: int, directory: str, project: str | None = None,
           log=print) -> dict | None:
    """Run (or resume) the search; on the chief, write the report and return best_hparams."""
    import tensorflow as tf

    from keras_models.distribute import get_strategy

    tf.get_logger().setLevel("ERROR")
    project = project or f"{base.model}-{kind}"
    if is_chief_oracle():
        claim_search(Path(directory) / project, base, epochs)
    train_images, test_images = load_data(base.data, base.test_data)
    pairs, _ = draw_round(train_images, test_images, base.pairs, base.seed)
    train, val = split_validation(pairs, base.validation_split or 0.2)
    strategy = get_strategy(base.strategy)
    replicated = strategy.num_replicas_in_sync > 1
    hypermodel = hypermodel_for(base, *pixel_stats(train), sync_bn=replicated)
    tuner = make_tuner(kind, hypermodel, max_trials, epochs, directory, project, base.seed,
                       strategy if replicated else None)
    # Which outputs need targets follows from the model name; no model has to be built for it.
    outputs = output_names(base.model)
    log(f"tuning {base.model} with {kind} search ({'max_epochs' if kind == 'hyperband' else 'max_trials'} "
        f"{epochs if kind == 'hyperband' else max_trials}); {len(train)} training and {len(val)} validation pairs")
    try:
        tuner.search(train.x, train.targets(outputs), validation_data=(val.x, val.targets(outputs)),
                     epochs=epochs, batch_size=base.batch_size, verbose=0 if base.quiet else 2)
    except RuntimeError as e:
        # keras-tuner ends a search after max_consecutive_failed_trials with a RuntimeError
        # that carries the last trial's traceback; its last line is the reason.
        if "consecutive failures" not in str(e):
            raise
        last = str(e).strip().splitlines()[-1]
        raise RunError(f"{Path(directory) / project}: {MAX_FAILED_TRIALS} trials failed in a row; the last: {last}") from None
    if not is_chief_oracle():
        return None
    return write_report(tuner, base, kind, epochs, Path(directory) / project, log)


# --------------------------------------------------------------------------- report

def trial_rows(tuner, base: Config) -> list[dict]:
    from keras_models.models import build_model

    rows = []
    for trial in tuner.oracle.trials.values():
        info_path = Path(tuner.get_trial_dir(trial.trial_id)) / "run_info.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        cfg = tuner.hypermodel.sample(trial.hyperparameters)
        rows.append({
            "trial": trial.trial_id, "status": trial.status, "score": trial.score,
            "hyperparameters": dict(trial.hyperparameters.values),
            "params": int(build_model(cfg).count_params()),
            "depth": trial.hyperparameters.values.get("depth"),
            "width": trial.hyperparameters.values.get("filters" if family(base.model) == "cnn" else "units"),
            "seconds": info.get("seconds"), "tuner_id": info.get("tuner_id"),
            "config": {k: v for k, v in cfg.to_dict().items() if k in CONFIG_KEYS},
        })
    return sorted(rows, key=lambda r: (r["score"] is None, -(r["score"] or 0)))


def write_report(tuner, base: Config, kind: str, epochs: int, folder: Path, log=print) -> dict:
    rows = trial_rows(tuner, base)
    done = [r for r in rows if r["status"] == "COMPLETED" and r["score"] is not None]
    if not done:
        statuses = ", ".join(sorted({r["status"] for r in rows})) or "none ran"
        raise RunError(f"{folder}: no trial completed ({statuses}); nothing to report")
    best = done[0]
    names = sorted({k for r in rows for k in r["hyperparameters"]})
    lines = [f"# {kind} search for {base.model}: {len(done)} of {len(rows)} trials completed", "",
             f"Objective: {OBJECTIVE} (max) on {base.validation_split or 0.2:.0%} of the training pairs; "
             f"{epochs} epochs per trial.", "",
             "| trial | status | val acc. % | " + " | ".join(names) + " | parameters | seconds | tuner |",
             "| --- | --- |" + " ---: |" * (len(names) + 3) + " --- |"]
    for r in rows:
        hp = " | ".join(fmt(r["hyperparameters"].get(n)) for n in names)
        score = "-" if r["score"] is None else f"{100 * r['score']:.1f}"
        lines.append(f"| {r['trial']} | {r['status']} | {score} | {hp} | {r['params']:,} | "
                     f"{fmt(r['seconds'])} | {r['tuner_id'] or '-'} |")
    atomic_write_text(folder / "trials.md", "\n".join(lines) + "\n")
    atomic_write_json(folder / "trials.json", rows)
    result = {"config": best["config"], OBJECTIVE: best["score"], "trial": best["trial"], "tuner": kind,
              "epochs": epochs, "hyperparameters": best["hyperparameters"]}
    atomic_write_json(folder / "best_hparams.json", result)
    plot_trials(done, folder / "trials.png", base.model)
    log(f"best trial {best['trial']}: {OBJECTIVE} {100 * best['score']:.2f}% with {best['hyperparameters']}")
    log(f"wrote {folder / 'best_hparams.json'}, {folder / 'trials.md'}, {folder / 'trials.png'}")
    return result


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def plot_trials(rows: list[dict], path: Path, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depth = np.array([r["depth"] for r in rows])
    width = np.array([r["width"] for r in rows])
    score = 100 * np.array([r["score"] for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, x, other, label, other_label in ((axes[0], depth, width, "depth", "width"),
                                             (axes[1], width, depth, "width", "depth")):
        points = ax.scatter(x, score, c=other, cmap="viridis")
        ax.set(xlabel=label, ylabel="validation accuracy of compare (%)")
        fig.colorbar(points, ax=ax, label=other_label)
    fig.suptitle(f"{model}: validation accuracy of each trial")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
