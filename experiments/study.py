"""The report's study in one call: Table I (six models over rounds) and Figures 4-7 (loss and
accuracy per epoch, mean over rounds with a one-standard-deviation band).

Every experiment is an ordinary `training.run` in its own run folder under `<out>/runs/`, so a
study that was stopped resumes where it was (finished rounds are kept) and shares every line
of training code with `train.py`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from keras_models.core.errors import RunError
from keras_models.core.files import atomic_write_json, atomic_write_text
from keras_models.models import architectures
from keras_models.training.config import Config
from keras_models.training.recipes import RECIPES, recipe_changes
from keras_models.training.results import pm, read_results, secs


@dataclass(frozen=True)
class Experiment:
    key: str  # run folder name
    model: str
    width: int | None = None  # a figure's hidden width, `depth` times, before the body's tail; None: the default
    depth: int = 2
    epochs_fraction: float = 1.0  # of the recipe's epochs

    def hidden(self, cfg: Config) -> tuple[int, ...] | None:
        """The hidden widths of the network `cfg` builds: the report's `[w] * (layers - 1) + [196]`
        for its MLP family, `[w] * (layers - 1)` for the project's."""
        if self.width is None:
            return None
        return (self.width,) * self.depth + cfg.spec.body.tail


# Table I names the report's six architectures, whatever else is registered.
TABLE = [Experiment(a.name, a.name) for a in architectures.report_architectures()]
MODELS = [e.model for e in TABLE]
# The report trains its networks of depth 2 (one hidden layer before the last) 200 epochs, those
# of depth 3 500 (section IV); Figure 4 reads its values at epoch 200.
DEPTH2_EPOCHS = 200 / 500
FIGURES = {
    4: (
        "MLP family, 1 hidden layer of 500",
        [Experiment(f"{m}-h500", m, 500, 1, DEPTH2_EPOCHS) for m in ("mlp", "cc", "cc_aux")],
    ),
    5: ("MLP family, 2 hidden layers of 500", [e for e in TABLE if architectures.get(e.model).family == "mlp"]),
    6: (
        "MLP 600, CC 400, CC_AUX 300 units, 2 hidden layers",
        [
            Experiment("mlp-h600x2", "mlp", 600),
            Experiment("cc-h400x2", "cc", 400),
            Experiment("cc_aux-h300x2", "cc_aux", 300),
        ],
    ),
    7: ("CNN family", [e for e in TABLE if architectures.get(e.model).family == "cnn"]),
}


def experiment_config(base: Config, exp: Experiment, recipe: str, epochs_scale: float, out: Path) -> Config:
    """The run of `exp` under `recipe` (its learning rate, epochs and network), its epochs scaled."""
    r = recipe_changes(recipe, exp.model)
    cfg = base.replace(**{**r, "model": exp.model, "out": str(out / "runs" / exp.key), "export": False})
    return cfg.replace(hidden=exp.hidden(cfg), epochs=max(1, round(r["epochs"] * exp.epochs_fraction * epochs_scale)))


def plan(models: list[str], figures: list[int]) -> list[Experiment]:
    """The experiments to run, each once, in table-then-figure order; `models` narrows the
    figures' experiments too."""
    wanted = [e for e in TABLE if e.model in models]
    for f in figures:
        wanted += [e for e in FIGURES[f][1] if e.model in models]
    seen, out = set(), []
    for e in wanted:
        if e.key not in seen:
            seen.add(e.key)
            out.append(e)
    return out


# --------------------------------------------------------------------------- outputs


def table_rows(out: Path, models: list[str]) -> list[dict]:
    """Table I's rows of the study in `out`: each model's scores over its rounds beside its row
    of the report, with what trained it (network, parameters, commits, machines)."""
    from keras_models.core.machine import summary

    rows = []
    for exp in TABLE:
        r = read_results(out / "runs" / exp.key / "results.json") if exp.model in models else None
        if r is None:
            continue
        ok = [x for x in r["rounds"] if x["status"] == "ok"]
        report = architectures.get(exp.model).report
        cfg = Config.from_groups(r["config"])
        rows.append(
            {
                "model": exp.model,
                "network": cfg.spec.network,
                "classifier_softmax": cfg.spec.classifier_softmax,
                "params": r["params"],
                "trainable_params": r.get("trainable_params"),
                "rounds": r["rounds_ok"],
                **{
                    f"{score}_{stat}": r[f"{score}_{stat}"]
                    for score in ("running_train_accuracy", "train_accuracy", "test_accuracy", "digit_test_accuracy")
                    for stat in ("mean", "std")
                },
                "epochs": cfg.num_epochs,
                "lr": cfg.recipe.lr,
                "seconds_per_round": r["seconds_mean"],
                "wall_seconds_per_round": r.get("wall_seconds_mean"),
                "report": dataclasses.asdict(report),
                "commits": sorted({x.get("commit", "unknown") for x in ok}),
                "machines": sorted({summary(x["machine"]) for x in ok if "machine" in x}),
            }
        )
    return rows


def table_markdown(rows: list[dict], title: str) -> str:
    """Table I: the report's way of measuring (train accuracy running over the last epoch's
    batches in training mode) beside a clean one (the training pairs scored after training in
    inference mode); test accuracy is the last epoch's in inference mode in both."""
    lines = [
        f"# {title}",
        "",
        "| model | network | trainable parameters (report's) | train acc. %, running | report train % | "
        "train acc. %, evaluated | test acc. % | report test % | gap | digit acc. % | epochs | lr | "
        "training s / round |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        report = r["report"]
        digit = (
            "-"
            if r["digit_test_accuracy_mean"] is None
            else pm(r["digit_test_accuracy_mean"], r["digit_test_accuracy_std"])
        )
        network = r["network"] + (", softmax over the batch" if r["classifier_softmax"] == "batch" else "")
        params = "-" if r["trainable_params"] is None else f"{r['trainable_params']:,}"
        lines.append(
            f"| {r['model']} | {network} | {params} ({report['params']:,}) | "
            f"{pm(r['running_train_accuracy_mean'], r['running_train_accuracy_std'])} | "
            f"{report['train']:.2f} ± {report['train_std']:.2f} | "
            f"{pm(r['train_accuracy_mean'], r['train_accuracy_std'])} | "
            f"{pm(r['test_accuracy_mean'], r['test_accuracy_std'])} (n={r['rounds']}) | "
            f"{report['test']:.2f} ± {report['test_std']:.2f} | "
            f"{100 * r['test_accuracy_mean'] - report['test']:+.2f} | "
            f"{digit} | {r['epochs']} | {r['lr']:g} | {secs(r['seconds_per_round'])} |"
        )
    lines += [
        "",
        "Train acc., running: the compare accuracy over the last epoch's training batches as they trained "
        "(dropout on, batch statistics), as the report measured it. Train acc., evaluated: the training pairs "
        "scored after training in inference mode. Test acc.: the test pairs after the last epoch, in inference mode. "
        "Parameters: those Keras trains; in brackets the report's, as PyTorch counts them (batch-norm layers that "
        "were built and never called included).",
    ]
    return "\n".join(lines) + "\n"


def plot_figure(out: Path, number: int) -> Path | None:
    from keras_models.training.plots import curves, plot_curves  # loads Keras: not before work starts

    title, experiments = FIGURES[number]
    series = [(exp.model, curves(out / "runs" / exp.key)) for exp in experiments]
    return plot_curves(out / f"figure{number}.png", series, f"Figure {number}: {title} (mean ± 1 std over rounds)")


def write_outputs(
    out: Path, models: list[str], figures: list[int], recipe: str, wall_seconds: float, command: str | None = None
) -> dict:
    """table.json and table.md, the figures, and figures.json and figures.md beside the report's
    points; each JSON file says when, how and on what code its rows were written."""
    from keras_models.core.machine import provenance

    rows = table_rows(out, models)
    # The commits and machines its rounds ran on, which a resumed study may have mixed.
    written = provenance(command, [c for r in rows for c in r["commits"]], [m for r in rows for m in r["machines"]])
    meta = {
        "recipe": recipe,
        "epochs_per_family": RECIPES[recipe],
        "wall_seconds": round(wall_seconds, 1),
        "provenance": written,
        "rows": rows,
    }
    atomic_write_json(out / "table.json", meta)
    title = (
        f"Table I, recipe `{recipe}` (mean ± std over rounds; wall time of this invocation {wall_seconds / 60:.1f} min)"
    )
    atomic_write_text(out / "table.md", table_markdown(rows, title))
    meta["figures"] = [str(p) for p in (plot_figure(out, f) for f in figures) if p is not None]
    if figures:
        from .figure_points import figure_points, points_markdown

        points = figure_points(out, {f: FIGURES[f][1] for f in figures})
        if points:
            atomic_write_json(out / "figures.json", {"recipe": recipe, "provenance": written, "points": points})
            atomic_write_text(out / "figures.md", points_markdown(points))
    return meta


STUDY_RECORD = "reproduce.json"  # the settings of the studies in a results folder, by kind


def claim_folder(out: Path, kind: str, settings: dict) -> None:
    """Refuse, in one line, a folder that holds a study of this kind (Table I or an ablation)
    with other settings, or finished outputs with no record of theirs; else record `settings`
    there first, before anything runs."""
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: a file, not a folder; give --out a folder")
    record_path = out / STUDY_RECORD
    try:
        record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    except ValueError:
        raise RunError(f"{record_path}: not valid JSON; move it away or use another --out") from None
    outputs = {"table": "table.json", "ablation": "ablation.json", "frontier": "frontier.json"}
    if kind not in record and (out / outputs[kind]).is_file():
        raise RunError(f"{out}: holds a finished {kind} with no record of its settings; use another --out")
    old = record.get(kind, settings)
    differ = sorted(k for k in settings if old.get(k) != settings[k])
    if differ:
        raise RunError(f"{out}: holds a {kind} study with other settings ({', '.join(differ)}); use another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record_path, {**record, kind: settings})


def run_study(
    base: Config,
    out: Path,
    recipe: str = "report",
    models: list[str] | None = None,
    figures: list[int] | None = None,
    epochs_scale: float = 1.0,
    log=print,
    command: str | None = None,
) -> dict:
    from keras_models.data.images import load_data
    from keras_models.training.run import run

    models = list(MODELS) if models is None else models
    figures = sorted(FIGURES) if figures is None else figures
    out.mkdir(parents=True, exist_ok=True)
    images = load_data(base.recipe.data, base.recipe.test_data)
    experiments = plan(models, figures)
    start = time.perf_counter()
    for i, exp in enumerate(experiments):
        cfg = experiment_config(base, exp, recipe, epochs_scale, out)
        elapsed = time.perf_counter() - start
        eta = f", about {elapsed / i * (len(experiments) - i) / 60:.1f} min left" if i else ""
        log(
            f"== experiment {i + 1}/{len(experiments)}: {exp.key} ({cfg.run.rounds} rounds, {cfg.num_epochs} epochs, "
            f"lr {cfg.recipe.lr:g}){eta}"
        )
        run(cfg, log=log, images=images)
    meta = write_outputs(out, models, figures, recipe, time.perf_counter() - start, command)
    log(f"wrote {out / 'table.md'}, {out / 'table.json'} and {len(meta['figures'])} figure(s)")
    for line in undrawn(figures, models):
        log(line)
    return meta


def undrawn(figures: list[int], models: list[str]) -> list[str]:
    """A line for each requested figure that none of `models` appears in, saying why it is not drawn."""
    lines = []
    for number in figures:
        shown = {e.model for e in FIGURES[number][1]}
        if not shown & set(models):
            lines.append(f"figure {number} not drawn: it shows {', '.join(sorted(shown))}, none of them among --models")
    return lines
