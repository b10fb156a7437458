"""The small-model ablation's figure: test accuracy against training seconds per round, its
rows beside the published points of the study and the earlier ablation."""

from __future__ import annotations

import json
from pathlib import Path

from keras_models.training.config import Config


def earlier_points(results: Path) -> list[dict]:
    """The published points: cnn_aux on the report and fast recipes (Table I), and every row of
    the earlier ablation (validation-split rows, already reported on test pairs), from the
    committed results."""
    from keras_models.training.config import config_mflops as count  # imports TensorFlow: not at `reproduce.py --help`
    from keras_models.training.recipes import recipe_changes

    from .ablation import ABLATION, ablation_config

    points = []
    for recipe, path in (("report", results / "table.json"), ("fast", results / "fast" / "table.json")):
        if path.is_file():
            row = next((r for r in json.loads(path.read_text())["rows"] if r["model"] == "cnn_aux"), None)
            if row:
                cfg = Config(model="cnn_aux", **recipe_changes(recipe, "cnn_aux"))
                points.append(
                    {
                        "name": f"--recipe {recipe}",
                        "accuracy": row["test_accuracy_mean"],
                        "std": row["test_accuracy_std"],
                        "seconds": row["seconds_per_round"],
                        "mflop": count(cfg),
                    }
                )
    path = results / "ablation.json"
    if path.is_file():
        published = json.loads(path.read_text())
        declared = {r.key: r for r in ABLATION}
        for r in published["rows"]:
            if r["key"] not in declared or r["test_accuracy_mean"] is None:
                continue
            cfg = ablation_config(Config(), declared[r["key"]], results)
            points.append(
                {
                    "name": r["key"],
                    "accuracy": r["test_accuracy_mean"],
                    "std": r["test_accuracy_std"],
                    "seconds": r["seconds_per_round"],
                    "mflop": count(cfg),
                }
            )
    return points


def plot_frontier(
    rows: list[dict], named: dict, earlier: list[dict], path: Path, rounds: int, public_best: float
) -> None:
    """Test accuracy (mean ± std over rounds) against training seconds per round, the marker's
    area proportional to the serving cost. Rows not chosen show their dev accuracy, hollow,
    since their test accuracy is not reported; a row that ran fewer than `rounds` says so. The
    small-model rows are numbered as in results/frontier.md, with a key beside the axes: their
    names would overlap where the rows crowd one budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 6))
    fig.subplots_adjust(left=0.06, right=0.70, top=0.93, bottom=0.09)

    def point(x, y, err, mflop, name, **style):
        ax.errorbar(x, 100 * y, yerr=100 * (err or 0), fmt="none", ecolor=style.get("edgecolors", "grey"), alpha=0.6)
        ax.scatter([x], [100 * y], s=3 * mflop, zorder=3, **style)
        ax.annotate(name, (x, 100 * y), textcoords="offset points", xytext=(6, 4), fontsize=7)

    for p in earlier:
        if p["name"].startswith("stacked_m"):  # members of `stacked`: the same recipe again
            continue
        point(p["seconds"], p["accuracy"], p["std"], p["mflop"], p["name"], color="tab:grey", alpha=0.5)
    key = []
    for number, r in enumerate(rows, 1):
        if r["key"] in named:
            point(
                r["seconds_per_round"],
                r["test_accuracy_mean"],
                r["test_accuracy_std"],
                r["mflop"],
                f"{number}: --recipe {named[r['key']]}",
                color="tab:red",
            )
            key.append(f"{number:>2}  {r['key']} (--recipe {named[r['key']]}, test)")
        else:
            unfinished = f", {r['rounds']} rounds" if r["rounds"] < rounds else ""
            point(
                r["seconds_per_round"],
                r["dev_accuracy_mean"],
                r["dev_accuracy_std"],
                r["mflop"],
                str(number),
                facecolors="none",
                edgecolors="tab:blue",
            )
            key.append(f"{number:>2}  {r['key']} (dev{unfinished})")
    fig.text(0.71, 0.93, "small-model rows\n" + "\n".join(key), va="top", fontsize=7, family="monospace")
    ax.axhline(public_best, color="black", linestyle="--", linewidth=1)
    ax.text(
        0.01,
        public_best + 0.05,
        f"best public result on this protocol, {public_best}% (siamese LeNet)",
        transform=ax.get_yaxis_transform(),
        fontsize=8,
    )
    ax.set_xscale("log")
    ax.set_xlabel("training seconds per round (2 CPU cores)")
    ax.set_ylabel("test accuracy % (mean ± std over rounds); hollow: dev accuracy")
    ax.set_title("cnn_aux: accuracy against training time; marker area ~ MFLOP per pair")
    ax.set_ylim(94, 100)
    fig.savefig(path, dpi=120)
    plt.close(fig)
