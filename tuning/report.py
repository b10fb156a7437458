"""A search's report: one row per trial (its score, hyperparameters, size, cost and seconds),
trials.md and trials.json, best_hparams.json, and the objective against depth and width."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_models.core.errors import RunError
from keras_models.core.files import atomic_write_json, atomic_write_text
from keras_models.training.config import Config

from .hypermodels import DEV_OBJECTIVE, HYPERMODELS

OBJECTIVE = "val_compare_accuracy"
CONFIG_KEYS = ("model", "hidden", "comparer", "filters", "dropout", "lr")


def chosen_settings(cfg: Config) -> dict:
    """The settings a search chooses (CONFIG_KEYS), in their groups, as a Config is saved."""
    groups = {g: {k: v for k, v in part.items() if k in CONFIG_KEYS} for g, part in cfg.to_groups().items()}
    return {g: part for g, part in groups.items() if part}


def trial_number(trial_id: str) -> int:
    """The number keras-tuner shows for a trial ("Search: Running Trial #2", "Trial 2 Complete"):
    its ids count from "0" in the order trials are created, its console from 1. The report, its
    files and this project's lines use the console's number."""
    return int(trial_id) + 1


def objective_of(base: Config) -> str:
    return DEV_OBJECTIVE if base.recipe.dev_pairs else OBJECTIVE


def trial_rows(tuner, base: Config) -> list[dict]:
    from keras_models.models.builder import build_model
    from keras_models.training.config import config_mflops

    rows = []
    for trial in tuner.oracle.trials.values():
        info_path = Path(tuner.get_trial_dir(trial.trial_id)) / "run_info.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        cfg = tuner.hypermodel.sample(trial.hyperparameters)
        rows.append(
            {
                "trial": trial_number(trial.trial_id),
                "trial_id": trial.trial_id,
                "status": trial.status,
                "score": trial.score,
                "hyperparameters": dict(trial.hyperparameters.values),
                "params": int(build_model(cfg.spec).count_params()),
                "mflop": round(config_mflops(cfg), 2),
                "depth": trial.hyperparameters.values.get("depth"),
                "width": trial.hyperparameters.values.get(HYPERMODELS[base.arch.family].width),
                "seconds": info.get("seconds"),
                "tuner_id": info.get("tuner_id"),
                "config": chosen_settings(cfg),
            }
        )
    return sorted(rows, key=lambda r: (r["score"] is None, -(r["score"] or 0)))


def write_report(tuner, base: Config, plan, log=print) -> dict:
    """The report of `plan` (a search.Search) into its folder; returns best_hparams.json's contents."""
    kind, epochs, executions, folder = plan.kind, plan.epochs, plan.executions, plan.folder(base)
    objective = objective_of(base)
    rows = trial_rows(tuner, base)
    done = [r for r in rows if r["status"] == "COMPLETED" and r["score"] is not None]
    names = sorted({k for r in rows for k in r["hyperparameters"]})
    lines = [
        f"# {kind} search for {base.spec.model}: {len(done)} of {len(rows)} trials completed",
        "",
        f"Objective: {objective} (max) on "
        + (
            f"{base.recipe.dev_pairs} dev pairs per round, the mean over {executions} round(s) (seeds "
            f"{base.recipe.seed}-{base.recipe.seed + executions - 1}), each trained on all its "
            f"{base.recipe.pairs} pairs"
            if base.recipe.dev_pairs
            else f"{base.recipe.validation_split or 0.2:.0%} of the training pairs"
        )
        + f"; {epochs} epochs per trial. Failed trials include those over the cost limit (untrained).",
        "",
        f"| trial | status | {objective.split('_')[0]} acc. % | "
        + " | ".join(names)
        + " | parameters | MFLOP / pair | seconds | tuner |",
        "| --- | --- |" + " ---: |" * (len(names) + 4) + " --- |",
    ]
    for r in rows:
        hp = " | ".join(fmt(r["hyperparameters"].get(n)) for n in names)
        score = "-" if r["score"] is None else f"{100 * r['score']:.1f}"
        lines.append(
            f"| {r['trial']} | {r['status']} | {score} | {hp} | {r['params']:,} | {r['mflop']:.1f} | "
            f"{fmt(r['seconds'])} | {r['tuner_id'] or '-'} |"
        )
    atomic_write_text(folder / "trials.md", "\n".join(lines) + "\n")
    atomic_write_json(folder / "trials.json", rows)
    if not done:
        statuses = ", ".join(sorted({r["status"] for r in rows})) or "none ran"
        raise RunError(f"{folder}: no trial completed ({statuses}); see trials.md")
    best = done[0]
    result = {
        "config": best["config"],
        objective: best["score"],
        "trial": best["trial"],
        "tuner": kind,
        "epochs": epochs,
        "hyperparameters": best["hyperparameters"],
    }
    atomic_write_json(folder / "best_hparams.json", result)
    plot_trials(done, folder / "trials.png", base.spec.model, "dev" if base.recipe.dev_pairs else "validation")
    log(f"best: Trial {best['trial']}, {objective} {100 * best['score']:.2f}% with {best['hyperparameters']}")
    log(f"wrote {folder / 'best_hparams.json'}, {folder / 'trials.md'}, {folder / 'trials.png'}")
    return result


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def plot_trials(rows: list[dict], path: Path, model: str, scored_on: str = "validation") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depth = np.array([r["depth"] for r in rows])
    width = np.array([r["width"] for r in rows])
    score = 100 * np.array([r["score"] for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, x, other, label, other_label in (
        (axes[0], depth, width, "depth", "width"),
        (axes[1], width, depth, "width", "depth"),
    ):
        points = ax.scatter(x, score, c=other, cmap="viridis")
        ax.set(xlabel=label, ylabel=f"{scored_on} accuracy of compare (%)")
        fig.colorbar(points, ax=ax, label=other_label)
    fig.suptitle(f"{model}: {scored_on} accuracy of each trial")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
