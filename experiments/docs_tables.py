"""The docs' result tables, each written by one function of TABLES from the results files it
reads; experiments/docs_check.py finds them in the docs, writes them and checks them. Each table
ends with a line saying where its figures came from: the commits and machines their rounds ran
on, the date its file was written and the command that wrote it, as the file records them."""

from __future__ import annotations

import functools
import math

from keras_models.training.results import pm, secs

MODELS = ("mlp", "cc", "cc_aux", "cnn", "cnn_cc", "cnn_aux")


def provenance_line(*files: dict) -> str:
    """Where the figures of a table came from, from the `provenance` their files record."""
    files = [f["provenance"] for f in files]
    commits = sorted({c for f in files for c in f["commits"]})
    machines = sorted({m for f in files for m in f["machines"]})
    dates = sorted({f["date"][:10] for f in files})
    commands = "; ".join("`" + f["command"] + "`" for f in files)
    return f"Commit {', '.join(commits)}; {'; '.join(machines)}; written {', '.join(dates)} ({commands})."


def rows_by_model(table: dict) -> dict:
    return {r["model"]: r for r in table["rows"]}


def gap(ours: float, report: float) -> str:
    return f"{100 * ours - report:+.2f}"


def table_one(table: dict) -> list[str]:
    """Table I: the report's way of measuring train accuracy beside the clean one, test accuracy
    beside the report's, with each row's gap."""
    lines = [
        "| model | trainable parameters | train acc. %, running | report train % | train acc. %, evaluated "
        "| test acc. % | report test % | gap | training s / round |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in table["rows"]:
        rep = r["report"]
        lines.append(
            f"| `{r['model']}` | {r['trainable_params']:,} | "
            f"{pm(r['running_train_accuracy_mean'], r['running_train_accuracy_std'])} | "
            f"{rep['train']:.2f} ± {rep['train_std']:.2f} | {pm(r['train_accuracy_mean'], r['train_accuracy_std'])} | "
            f"{pm(r['test_accuracy_mean'], r['test_accuracy_std'])} | {rep['test']:.2f} ± {rep['test_std']:.2f} | "
            f"{gap(r['test_accuracy_mean'], rep['test'])} | {secs(r['seconds_per_round'])} |"
        )
    rounds = sorted({r["rounds"] for r in table["rows"]})
    return [*lines, "", f"{'/'.join(map(str, rounds))} rounds a model. {provenance_line(table)}"]


def table_one_brief(table: dict) -> list[str]:
    """Table I's test accuracy in one block: the project's, the report's, the gap."""
    rows = rows_by_model(table)
    shown = [m for m in MODELS if m in rows]
    lines = ["| | " + " | ".join(f"`{m}`" for m in shown) + " |", "| --- |" + " ---: |" * len(shown)]
    lines.append(
        "| test acc. % | "
        + " | ".join(pm(rows[m]["test_accuracy_mean"], rows[m]["test_accuracy_std"]) for m in shown)
        + " |"
    )
    lines.append("| report % | " + " | ".join(f"{rows[m]['report']['test']:.2f}" for m in shown) + " |")
    lines.append(
        "| gap | " + " | ".join(gap(rows[m]["test_accuracy_mean"], rows[m]["report"]["test"]) for m in shown) + " |"
    )
    return [*lines, "", provenance_line(table)]


def softmax_versions(batch: dict, classes: dict) -> list[str]:
    """The CNN classifier's softmax over the classes (Table I) and over the batch, beside the report."""
    over_batch, over_classes = rows_by_model(batch), rows_by_model(classes)
    lines = [
        "| model | softmax over the classes, test % | over the batch, test % | report test % "
        "| over the batch, train % running | report train % |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m, b in over_batch.items():
        c, rep = over_classes[m], b["report"]
        lines.append(
            f"| `{m}` | {pm(c['test_accuracy_mean'], c['test_accuracy_std'])} | "
            f"{pm(b['test_accuracy_mean'], b['test_accuracy_std'])} | {rep['test']:.2f} ± {rep['test_std']:.2f} | "
            f"{pm(b['running_train_accuracy_mean'], b['running_train_accuracy_std'])} | "
            f"{rep['train']:.2f} ± {rep['train_std']:.2f} |"
        )
    rounds = "/".join(str(r) for r in sorted({r["rounds"] for r in batch["rows"]}))
    return [*lines, "", f"Over the batch, {rounds} rounds a model. {provenance_line(batch, classes)}"]


def binomial_floor(accuracy: float, pairs: int) -> float:
    """The std that scoring `pairs` independent test pairs adds to an accuracy, in percent."""
    return 100 * math.sqrt(accuracy * (1 - accuracy) / pairs)


def spread(once: dict, fresh: dict) -> list[str]:
    """Each model's spread over rounds that redraw their pairs beside rounds that keep round 0's,
    the spread that scoring 1000 test pairs adds by itself, and the report's."""
    pairs = fresh.get("pairs", 1000)
    lines = [
        "| model | pairs | test acc. % | std, points | std of scoring the test pairs alone | report's std |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for m, o in rows_by_model(once).items():
        f = rows_by_model(fresh)[m]
        # Test pairs that every round shares add nothing to the spread between rounds.
        for what, r, floor in (
            ("redrawn each round", f, f"{binomial_floor(f['test_accuracy_mean'], pairs):.2f}"),
            ("round 0's in every round", o, "none: the same pairs"),
        ):
            lines.append(
                f"| `{m}` | {what} | {100 * r['test_accuracy_mean']:.2f} | {100 * r['test_accuracy_std']:.2f} | "
                f"{floor} | {r['report']['test_std']:.2f} |"
            )
    return [*lines, "", provenance_line(once, fresh)]


def figure_points(figures: dict) -> list[str]:
    """Figures 4-7: each curve at the epoch the report reads, beside the report's stated value."""
    lines = [
        "| figure | run | epoch | test acc. % | report % | gap |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for p in figures["points"]:
        stated = p["report"]
        lines.append(
            f"| {p['figure']} | {p['run']} | {p['epoch']} | {pm(p['test_accuracy_mean'], p['test_accuracy_std'])} | "
            + (
                "- | - |"
                if stated is None
                else f"{100 * stated:.0f} | {100 * (p['test_accuracy_mean'] - stated):+.1f} |"
            )
        )
    rounds = sorted({p["rounds"] for p in figures["points"]})
    return [*lines, "", f"{'/'.join(map(str, rounds))} rounds a curve. {provenance_line(figures)}"]


def race(result: dict) -> list[str]:
    """The race: every entry on the same pairs, the peer first, with both clocks over the peer's."""
    lines = [
        "| entry | test acc. % | worst round % | training s / round | wall-clock s / round | training / peer "
        "| wall-clock / peer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in result["entries"]:
        lines.append(
            f"| {e['name']} | {e['mean']:.2f} ± {e['std']:.2f} | {e['worst']:.2f} | {e['train_s_per_round']:.2f} | "
            f"{e['wall_s_per_round']:.2f} | {e['seconds_over_peer']:.2f} | {e['wall_over_peer']:.2f} |"
        )
    curve = "off for every entry" if result.get("test_curve") is False else "on where the recipe has one"
    return [*lines, "", f"{result['rounds']} rounds; test curve {curve}. {provenance_line(result)}"]


@functools.cache  # builds twelve models: once a process, for every doc that shows them
def networks() -> tuple[str, ...]:
    """Both families of the six models, with the trainable parameters each builds (as PyTorch
    counts them) and the report's Table I count, which adds batch-norm layers built and never
    called."""
    from keras_models.models import architectures
    from keras_models.models.builder import build_model
    from keras_models.models.cost import parameter_counts
    from keras_models.training.config import Config

    lines = [
        "| model | the project's network (`--network project`) | the authors' (`--network report`) "
        "| the report's count |",
        "| --- | ---: | ---: | ---: |",
    ]
    for m in MODELS:
        counts = [
            parameter_counts(build_model(Config(model=m, network=n).spec))["trainable_params"]
            for n in ("project", "report")
        ]
        lines.append(f"| `{m}` | {counts[0]:,} | {counts[1]:,} | {architectures.get(m).report.params:,} |")
    return tuple(lines)


def network_swap(project: dict, table: dict) -> list[str]:
    """One model under the report's recipe, on the same pairs (the same seeds), with the
    project's network and with the authors'."""
    authors = rows_by_model(table)[project["model"]]
    rep = authors["report"]
    lines = [
        "| network | trainable parameters | train acc. %, running | test acc. % | report test % | gap |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in (("the project's", project), ("the authors'", authors)):
        lines.append(
            f"| {name} | {r['trainable_params']:,} | "
            f"{pm(r['running_train_accuracy_mean'], r['running_train_accuracy_std'])} | "
            f"{pm(r['test_accuracy_mean'], r['test_accuracy_std'])} | {rep['test']:.2f} ± {rep['test_std']:.2f} | "
            f"{gap(r['test_accuracy_mean'], rep['test'])} |"
        )
    return [*lines, "", provenance_line(project, table)]


def step(*runs: dict) -> list[str]:
    """The training step of `cnn_aux` against the PyTorch reference, A/B in one process per
    kernel library: milliseconds per step of 100 pairs, median over the repetitions."""
    import statistics

    lines = [
        "| kernels | Keras ms / step | PyTorch ms / step | Keras / PyTorch, median | range |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        cmp = r["torch_comparison"]
        lines.append(
            f"| {r['machine']['kernels']} | {statistics.median(cmp['keras_ms']):.1f} | "
            f"{statistics.median(cmp['torch_ms']):.1f} | {cmp['ratio_median']:.2f} | "
            f"{min(cmp['ratios']):.2f}-{max(cmp['ratios']):.2f} |"
        )
    reps = sorted({len(r["torch_comparison"]["ratios"]) for r in runs})
    return [
        *lines,
        "",
        f"{'/'.join(map(str, reps))} repetitions each. {provenance_line(*runs)}",
    ]


def workers(*races: dict) -> list[str]:
    """Table I by one process and by `--workers 2`, one after the other in one invocation each,
    at a few epoch scales: when two workers pay."""
    lines = [
        "| epochs x | rounds | one process, wall-clock s | `--workers 2`, wall-clock s | speed-up |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in races:
        lines.append(
            f"| {r['epochs_scale']:g} | {r['rounds']} | {r['before']['wall_s']:.1f} | {r['now']['wall_s']:.1f} | "
            f"{r['wall_speedup']:.2f} |"
        )
    return [*lines, "", provenance_line(*races)]


def protocols(run: dict) -> list[str]:
    """Pairs per second at batch 1000 through each of serve.py's paths on 127.0.0.1, beside the
    SavedModel called in process."""
    speeds = run["protocols"]
    lines = ["| path | pairs / s | of in process |", "| --- | ---: | ---: |"]
    lines.append(f"| the SavedModel in process | {speeds['in_process']:.0f} | 1.00 |")
    for k, ratio in speeds["ratios"].items():
        lines.append(f"| `serve.py`, {k} | {speeds[k]:.0f} | {ratio:.2f} |")
    return [*lines, "", f"Batch {speeds['batch']}. {provenance_line(run)}"]


# What a table block names: its function, called with the results files the block names.
TABLES = {
    "networks": networks,
    "network_swap": network_swap,
    "table_one": table_one,
    "table_one_brief": table_one_brief,
    "softmax_versions": softmax_versions,
    "spread": spread,
    "figure_points": figure_points,
    "race": race,
    "step": step,
    "workers": workers,
    "protocols": protocols,
}
