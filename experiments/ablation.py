"""The ablation of cnn_aux beyond the report: one row per lever (or set of levers), every row
over the same rounds and pairs, with 10% of each round's training pairs held out for
validation; the ensembles scored from the rows' saved models; the table and the rule that
names the best recipe.

Every row is an ordinary `training.run` in its own run folder `<out>/runs/ablation-<row>`, so a
stopped ablation resumes where it was.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from keras_models.core.files import atomic_write_json, atomic_write_text
from keras_models.models.builder import NO_TTA, TTA_VIEWS
from keras_models.training.config import Config
from keras_models.training.results import mean_std, pm, read_results, secs

from .ablation_rows import ABLATION, ABLATION_BASE
from .rows import Row, row_config, train_rows

# An ensemble per round of four rows that learn from the pairs alone with the parameter-free
# comparer and augmentation, declared before they ran (long, the slowest, is left out so that
# the ensemble does not wait on it): digit distributions averaged, then compared.
ENSEMBLE = ("augment", "tuned", "smoothing", "decay")
# A second ensemble, its rule declared before the rows repair, learned_weights and stacked ran:
# the TOP_K rows with the best mean validation accuracy among those that learn from the pairs alone.
TOP_K = 4
# Declared before the extra members ran: the best row with one and two more members of the
# same recipe (stacked_x2, stacked_x3), and with test-time shifts (stacked_tta, stacked_x3_tta:
# config.TTA_VIEWS). stacked_x3_tta was named the candidate for 99% after stacked_tta had been
# scored once on validation and test pairs.
STACKED_ENSEMBLE = ("stacked", "stacked_m1", "stacked_m2")


def ablation_config(base: Config, row: Row, out: Path, epochs_scale: float = 1.0) -> Config:
    return row_config(base, ABLATION_BASE, row, out / "runs" / f"ablation-{row.key}", epochs_scale)


def row_summary(path: Path) -> dict | None:
    r = read_results(path)
    if r is None:
        return None
    return {
        "rounds": r["rounds_ok"],
        "params": r["params"],
        **{
            k: r[k]
            for k in (
                "validation_accuracy_mean",
                "validation_accuracy_std",
                "test_accuracy_mean",
                "test_accuracy_std",
                "digit_test_accuracy_mean",
                "digit_test_accuracy_std",
            )
        },
        "seconds_per_round": r["seconds_mean"],
        "wall_seconds_per_round": r.get("wall_seconds_mean"),
    }


def ablation_table(out: Path) -> list[dict]:
    rows = []
    for row in ABLATION:
        found = row_summary(out / "runs" / f"ablation-{row.key}" / "results.json")
        if found:
            rows.append(
                {
                    "key": row.key,
                    "label": row.label,
                    "changes": row.changes,
                    "outside_images": row.outside_images,
                    **found,
                }
            )
    return rows


def evaluate_ensemble(base: Config, out: Path, images, members=ENSEMBLE, views=NO_TTA) -> dict | None:
    """The members' saved models of each round, on that round's validation and test pairs
    (redrawn from the same seed), each pair also seen moved by every (dy, dx) of `views`.
    Rounds that some member has not finished are left out."""
    from keras_models.data.images import draw_round
    from keras_models.data.pipeline import split_validation
    from keras_models.models.builder import ensemble_model
    from keras_models.models.saving import load_keras_model
    from keras_models.training.results import evaluate_pairs

    per_round, seconds = [], []
    for r in range(base.run.rounds):
        paths = [out / "runs" / f"ablation-{k}" / f"round-{r:02d}" / "model.keras" for k in members]
        if not all(p.is_file() for p in paths):
            continue
        pairs, test = draw_round(*images, base.recipe.pairs, base.recipe.seed + r)
        _, val = split_validation(pairs, ABLATION_BASE["validation_split"])
        model = ensemble_model([load_keras_model(p) for p in paths], views)
        result = {"round": r}
        for name, p in (("validation", val), ("test", test)):
            scores = evaluate_pairs(model, p)
            if name == "test":  # timed again, now that the predict step is traced
                start = time.perf_counter()
                scores = evaluate_pairs(model, p)
                seconds.append(time.perf_counter() - start)
            result[f"{name}_accuracy"] = scores["accuracy"]
            result[f"digit_{name}_accuracy"] = scores["digit_accuracy"]
        per_round.append(result)
    if not per_round:
        return None
    summary = {
        "members": list(members),
        "views": [list(v) for v in views],
        "rounds": len(per_round),
        "per_round": per_round,
        "seconds_per_1000_test_pairs": float(np.median(seconds)),
    }
    for key in ("validation_accuracy", "test_accuracy", "digit_test_accuracy"):
        summary[f"{key}_mean"], summary[f"{key}_std"] = mean_std(x[key] for x in per_round)
    return summary


def ranked_rows(rows: list[dict]) -> list[dict]:
    """The rows that learn from the pairs alone, best mean validation accuracy first. Extra
    members of a row repeat its recipe and are left out."""
    eligible = [
        r
        for r in rows
        if not r["outside_images"] and r["validation_accuracy_mean"] is not None and not r["changes"].get("member")
    ]
    return sorted(eligible, key=lambda r: -r["validation_accuracy_mean"])


def best_row(rows: list[dict]) -> dict | None:
    """The rule fixed before the runs: best mean validation accuracy among the rows that learn
    from the pairs alone."""
    ranked = ranked_rows(rows)
    return ranked[0] if ranked else None


def ensembles(rows: list[dict]) -> dict[str, tuple[tuple[str, ...], tuple[tuple[int, int], ...]]]:
    """The ensembles of the table, by name: (members, views). The fixed one, the top rows by
    validation, and the stacked recipe's members and test-time views."""
    top = tuple(r["key"] for r in ranked_rows(rows)[:TOP_K])
    return {
        "ensemble": (ENSEMBLE, NO_TTA),
        **({f"ensemble_top{TOP_K}": (top, NO_TTA)} if len(top) == TOP_K else {}),
        "stacked_tta": (("stacked",), TTA_VIEWS),
        "stacked_x2": (STACKED_ENSEMBLE[:2], NO_TTA),
        "stacked_x3": (STACKED_ENSEMBLE, NO_TTA),
        "stacked_x3_tta": (STACKED_ENSEMBLE, TTA_VIEWS),
    }


def ablation_markdown(rows: list[dict], found: dict[str, dict | None], base: Config) -> str:
    test_flag = f" --test-data {base.recipe.test_data}" if base.recipe.test_data else ""
    lines = [
        "# Ablation: cnn_aux beyond the report",
        "",
        f"Mean ± std over rounds; round r of every row draws the same {base.recipe.pairs} training pairs (seed "
        f"{base.recipe.seed} + r; 10% of them held out for validation, so each row learns from "
        f"{round(base.recipe.pairs * 0.9)}, unless its validation column is n/a) and {base.recipe.pairs} test pairs. "
        f"Test pairs: `{base.recipe.test_data or 'embedded test half'}`.",
        "",
        f"A row: `python scripts/reproduce.py --ablation --rows ROW --rounds {base.run.rounds}{test_flag} --out OUT`; "
        f"the ensembles are scored, from the rows' saved models, after every such run "
        f"(`--rows none` only scores them).",
        "",
        "| row | what | validation acc. % | test acc. % | digit acc. % | training s / round | wall-clock s / round |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        mark = " (uses images outside the pairs)" if r["outside_images"] else ""
        lines.append(
            f"| {r['key']} | {r['label']}{mark} | {pm(r['validation_accuracy_mean'], r['validation_accuracy_std'])} | "
            f"{pm(r['test_accuracy_mean'], r['test_accuracy_std'])} (n={r['rounds']}) | "
            f"{pm(r['digit_test_accuracy_mean'], r['digit_test_accuracy_std'])} | {secs(r['seconds_per_round'])} | "
            f"{secs(r.get('wall_seconds_per_round'))} |"
        )
    for name, ensemble in found.items():
        if not ensemble:
            continue
        how = {f"ensemble_top{TOP_K}": f"the {TOP_K} best rows by validation: "}.get(name, "")
        members = ensemble["members"]
        what = (
            f"the models of rows {', '.join(members)} of the same round"
            if len(members) > 1
            else f"the model of row {members[0]}"
        )
        if len(ensemble["views"]) > 1:
            what += ", each pair also seen moved 1 px up, down, left and right"
        lines.append(
            f"| {name} | {how}{what}: digit "
            f"distributions averaged, then compared ({1000 * ensemble['seconds_per_1000_test_pairs']:.0f} ms "
            f"per 1000 test pairs) | {pm(ensemble['validation_accuracy_mean'], ensemble['validation_accuracy_std'])} | "
            f"{pm(ensemble['test_accuracy_mean'], ensemble['test_accuracy_std'])} (n={ensemble['rounds']}) | "
            f"{pm(ensemble['digit_test_accuracy_mean'], ensemble['digit_test_accuracy_std'])} | - |"
        )
    best = best_row(rows)
    if best:
        lines += [
            "",
            f"Best mean validation accuracy among the rows that learn from the pairs alone: "
            f"**{best['key']}** ({pm(best['validation_accuracy_mean'], best['validation_accuracy_std'])}).",
        ]
    return "\n".join(lines) + "\n"


def run_ablation(
    base: Config,
    out: Path,
    log=print,
    rows: list[str] | None = None,
    epochs_scale: float = 1.0,
    command: str | None = None,
) -> dict:
    images = train_rows(
        base, out, ABLATION, rows, lambda row: ablation_config(base, row, out, epochs_scale), "ablation", log
    )
    table = ablation_table(out)
    found = {
        name: evaluate_ensemble(base, out, images, members, views)
        for name, (members, views) in ensembles(table).items()
    }
    atomic_write_text(out / "ablation.md", ablation_markdown(table, found, base))
    from keras_models.core.machine import provenance

    atomic_write_json(out / "ablation.json", {"provenance": provenance(command), "rows": table, **found})
    log(f"wrote {out / 'ablation.md'}")
    return {"rows": table, **found}
