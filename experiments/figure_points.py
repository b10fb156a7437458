"""Figures 4-7 beside the points the report states for them: each curve's mean test accuracy
(± std over rounds) at the epoch the report names, from the runs' history.csv, written by the
study as figures.md and figures.json."""

from __future__ import annotations

from pathlib import Path

from keras_models.training.results import pm

# figure: (the epoch the report reads its values at, None for the figure's last; {model: value}),
# as the report states them. Figure 7 names no value: CNN_AUX is "high before epoch 60".
REPORT_POINTS = {
    4: (200, {"mlp": 0.81, "cc": 0.82, "cc_aux": 0.89}),
    5: (None, {"mlp": 0.81, "cc": 0.88, "cc_aux": 0.91}),
    6: (500, {"mlp": 0.81, "cc": 0.84, "cc_aux": 0.92}),
    7: (60, {"cnn_aux": None}),
}


def figure_points(out: Path, figures: dict[int, list]) -> list[dict]:
    """One row per curve of `figures` ({number: the study's experiments of its curves}) whose
    run has test curves up to the epoch read."""
    from keras_models.training.plots import curves  # loads Keras: not before work starts

    rows = []
    for number, experiments in figures.items():
        epoch, stated = REPORT_POINTS[number]
        for exp in experiments:
            c = curves(out / "runs" / exp.key)
            if "test_compare_accuracy" not in c:
                continue
            at = c["epoch"][0].size if epoch is None else epoch
            if at > c["epoch"][0].size:
                continue
            test = c["test_compare_accuracy"][:, at - 1]
            rows.append(
                {
                    "figure": number,
                    "run": exp.key,
                    "model": exp.model,
                    "epoch": int(at),
                    "rounds": int(test.size),
                    "test_accuracy_mean": float(test.mean()),
                    "test_accuracy_std": float(test.std(ddof=1)) if test.size > 1 else 0.0,
                    "report": stated.get(exp.model),
                }
            )
    return rows


def points_markdown(rows: list[dict]) -> str:
    lines = [
        "# Figures 4-7: test accuracy at the epoch the report reads, beside the report's value",
        "",
        "| figure | run | epoch | rounds | test acc. % | report % | gap |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        report = "-" if r["report"] is None else f"{100 * r['report']:.0f}"
        gap = "-" if r["report"] is None else f"{100 * (r['test_accuracy_mean'] - r['report']):+.1f}"
        lines.append(
            f"| {r['figure']} | {r['run']} | {r['epoch']} | {r['rounds']} | "
            f"{pm(r['test_accuracy_mean'], r['test_accuracy_std'])} | {report} | {gap} |"
        )
    return "\n".join(lines) + "\n"
