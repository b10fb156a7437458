"""The small-model ablation: recipes for the default-size cnn_aux (18.9 MFLOP per pair) that
learn from the round's 1000 pairs alone, chosen on dev pairs, and the figure of test accuracy
against training seconds as a multiple of the peer's in the same invocation.

Every row trains on all of the round's pairs and scores 1000 dev pairs, drawn from the
embedded images that the round's pairs leave out (never trained on, never from the test set).
The rule that names `--recipe speedrun` and `--recipe best` is `chosen` below, fixed before
the rows ran. Each row is an ordinary `training.run` in `<out>/runs/frontier-<row>`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_models.core.files import atomic_write_json, atomic_write_text
from keras_models.training.config import Config, config_mflops
from keras_models.training.results import ok_rounds, pm, read_results, secs

from .frontier_rows import FRONTIER, FRONTIER_BASE
from .peer import DEFAULT_PEER_TEXT, peer_seconds, run_peers
from .rows import Row, row_config, train_rows

# The budget of `best`, in training seconds per round alone on the 2 cores, and the serving
# cost limit of every recipe.
BEST_SECONDS = 900.0
MAX_MFLOP = 20.0
# The sprint and the speedrun are timed against the peer (experiments/peer.py) run in the same
# invocation as their rows, on the same machine: the sprint within the peer's training seconds
# per round, the speedrun within 3.5 times them. 3.5: half of what the speedrun's settings took
# a round (14.0 s) beside the peer's 1.99 s on a 2-core Xeon, before the rounds of a run shared
# one traced step and batch norm ran on the fused kernel.
SPRINT_PEER_MULTIPLE = 1.0
SPEEDRUN_PEER_MULTIPLE = 3.5
# The best public result on this protocol: a siamese LeNet comparing the predicted digits, 98.26 ±
# 0.34% in its own report on full MNIST (../shared/bench/peer_lenet.py re-implements it).
PUBLIC_BEST = 98.26
# oneDNN convolutions (TF_ENABLE_ONEDNN_OPTS=1) were to become the entry points' default if a
# paired run of row oc20 (the same 10 seeds with oneDNN on and off) lost at most this much mean
# dev accuracy, in points. Fixed before the paired run; it lost 0.12 (docs/REPORT.md section 7).
ONEDNN_MAX_LOSS = 0.1


def frontier_config(base: Config, row: Row, out: Path, epochs_scale: float = 1.0) -> Config:
    return row_config(base, FRONTIER_BASE, row, out / "runs" / f"frontier-{row.key}", epochs_scale)


ONEDNN_STATES = {frozenset({True}): "on", frozenset({False}): "off", frozenset({True, False}): "mixed"}


def onednn_state(rounds: list[dict]) -> str:
    """The oneDNN column: whether TensorFlow ran its oneDNN kernels in the rounds, as each round
    recorded it in its `machine`. Rounds from before that field read only the environment
    variable, which misses TensorFlow's own default on CPUs with AVX-512: not recorded."""
    states = {x.get("machine", {}).get("onednn") for x in rounds}
    if None in states:
        return "not recorded" if states == {None} else "partly recorded"
    return ONEDNN_STATES[frozenset(states)]


def row_result(path: Path) -> dict | None:
    r = read_results(path)
    if r is None:
        return None
    ok = ok_rounds(r)
    return {
        "peer_seconds": peer_seconds(path.parent),
        "rounds": r["rounds_ok"],
        "params": r["params"],
        "per_round": ok,
        "seconds_per_round": r["seconds_mean"],
        "seconds_max": r["seconds_max"],
        # Rows run before rounds recorded their wall-clock have none.
        "wall_seconds_per_round": r.get("wall_seconds_mean"),
        "onednn": onednn_state(ok),
        **{
            f"{key}_{s}": r[f"{key}_{s}"]
            for key in ("dev_accuracy", "test_accuracy", "digit_test_accuracy")
            for s in ("mean", "std")
        },
        "test_accuracy_min": float(min(x["test_accuracy"] for x in ok)),
    }


def paired_dev_difference(on: Path, off: Path) -> dict:
    """Round by round dev accuracy of two runs of one row on the same seeds (two results.json):
    the mean and std of on - off in points, and whether it passes ONEDNN_MAX_LOSS."""

    def by_seed(path):
        return {x["seed"]: x["dev_accuracy"] for x in ok_rounds(json.loads(path.read_text()))}

    a, b = by_seed(on), by_seed(off)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"{on} and {off} share no finished round")
    diff = [100 * (a[s] - b[s]) for s in seeds]
    mean = float(np.mean(diff))
    return {
        "rounds": len(seeds),
        "mean": mean,
        "std": float(np.std(diff)),
        "keeps_accuracy": mean >= -ONEDNN_MAX_LOSS,
        "dev_on": [a[s] for s in seeds],
        "dev_off": [b[s] for s in seeds],
    }


def frontier_table(base: Config, out: Path) -> list[dict]:
    """The finished rows, from their run folders in `out`; a row whose folder is not there is
    kept as `out/frontier.json` recorded it (a table grows across invocations and machines)."""
    recorded_path = out / "frontier.json"
    recorded = {r["key"]: r for r in json.loads(recorded_path.read_text())["rows"]} if recorded_path.is_file() else {}
    rows = []
    for row in FRONTIER:
        found = row_result(out / "runs" / f"frontier-{row.key}" / "results.json")
        if not found and row.key in recorded:
            rows.append(recorded[row.key])
        elif found:
            rows.append(
                {
                    "key": row.key,
                    "label": row.label,
                    "changes": row.changes,
                    "mflop": config_mflops(frontier_config(base, row, out)),
                    **found,
                }
            )
    return rows


def chosen(rows: list[dict], rounds: int) -> dict[str, str | None]:
    """The rule fixed before the rows ran: for each recipe, the row with the best mean dev
    accuracy among those that finished every round, cost at most MAX_MFLOP per pair and
    trained within the recipe's mean seconds per round: for the sprint and the speedrun, a
    multiple of the peer's seconds in the rows' own invocation (rows run without the peer
    compete for `best` alone)."""

    def winner(within):
        fit = [r for r in rows if r["rounds"] == rounds and r["mflop"] <= MAX_MFLOP and within(r)]
        return max(fit, key=lambda r: r["dev_accuracy_mean"])["key"] if fit else None

    def beside_peer(multiple):
        return lambda r: bool(r.get("peer_seconds")) and r["seconds_per_round"] <= multiple * r["peer_seconds"]

    return {
        "sprint": winner(beside_peer(SPRINT_PEER_MULTIPLE)),
        "speedrun": winner(beside_peer(SPEEDRUN_PEER_MULTIPLE)),
        "best": winner(lambda r: r["seconds_per_round"] <= BEST_SECONDS),
    }


def recipes_by_row(picks: dict) -> dict[str, str]:
    """{row: "speedrun, best"}: the recipes each chosen row became."""
    named: dict[str, list[str]] = {}
    for recipe, key in picks.items():
        if key:
            named.setdefault(key, []).append(recipe)
    return {k: " and ".join(v) for k, v in named.items()}


def frontier_markdown(rows: list[dict], picks: dict, base: Config) -> str:
    test_flag = f" --test-data {base.recipe.test_data}" if base.recipe.test_data else ""
    named = recipes_by_row(picks)
    lines = [
        "# Small-model ablation: cnn_aux at its default size",
        "",
        f"Mean ± std over {base.run.rounds} rounds; round r of every row trains on the same {base.recipe.pairs} pairs "
        f"(seed {base.recipe.seed} + r, all of them) and scores {FRONTIER_BASE['dev_pairs']} dev pairs from the "
        f"embedded images those pairs leave out. Test pairs: `{base.recipe.test_data or 'embedded test half'}`. "
        "Test accuracy is reported for the chosen rows only.",
        "",
        f"A row: `python scripts/reproduce.py --frontier --rows ROW --rounds {base.run.rounds}{test_flag} --out OUT`; "
        "a row timed against the peer adds `--peer` (it needs torch).",
        "",
        "Rule, fixed before the rows ran: each recipe is the row with the best mean dev accuracy among "
        f"those that cost at most {MAX_MFLOP:.0f} MFLOP per pair, finished all {base.run.rounds} rounds and "
        f"trained within its budget per round: `--recipe sprint`, {SPRINT_PEER_MULTIPLE:g} x and "
        f"`--recipe speedrun`, {SPEEDRUN_PEER_MULTIPLE:g} x the training seconds of the peer "
        f"(`{DEFAULT_PEER_TEXT}`, the best public recipe) run in the same invocation as the row "
        f"(`--peer`; its seconds in the peer column); `--recipe best`, {BEST_SECONDS:.0f} s. "
        "Training seconds: the epochs alone (a distilled row's teachers included), mean per round (max in "
        "brackets); wall-clock: each round from drawing its pairs to its last file written; the rows "
        "run one after another; oneDNN: whether TensorFlow ran its oneDNN kernels, as each round recorded it "
        "(`TF_ENABLE_ONEDNN_OPTS`, or on by default on CPUs with AVX-512).",
        "",
        "| row | what | MFLOP / pair | rounds | dev acc. % | test acc. % | worst test round % "
        "| training s / round | wall-clock s / round | peer training s / round | oneDNN |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        pick = named.get(r["key"])
        test = (
            (f"{pm(r['test_accuracy_mean'], r['test_accuracy_std'])}", f"{100 * r['test_accuracy_min']:.1f}")
            if pick
            else ("not reported", "-")
        )
        lines.append(
            f"| {r['key']}{f' (**{pick}**)' if pick else ''} | {r['label']} | {r['mflop']:.1f} | {r['rounds']} | "
            f"{pm(r['dev_accuracy_mean'], r['dev_accuracy_std'])} | {test[0]} | {test[1]} | "
            f"{secs(r['seconds_per_round'])} ({secs(r['seconds_max'])}) | {secs(r.get('wall_seconds_per_round'))} | "
            f"{secs(r.get('peer_seconds'))} | {r['onednn']} |"
        )
    return "\n".join(lines) + "\n"


def run_frontier(
    base: Config,
    out: Path,
    log=print,
    rows: list[str] | None = None,
    epochs_scale: float = 1.0,
    peer: Path | None = None,
    command: str | None = None,
) -> dict:
    """The rows, one after another; with `peer` (its script), the peer first, its result kept
    beside every row run in this invocation (`peer.json`), for the sprint's and the speedrun's
    budgets."""
    reference = None
    if peer:
        recipe = base.recipe
        peers = run_peers(peer, out, recipe.data, recipe.test_data, recipe.pairs, recipe.seed, base.run.rounds, log)
        reference = {"rows": [line for _, line in peers]}
    train_rows(
        base,
        out,
        FRONTIER,
        rows,
        lambda row: frontier_config(base, row, out, epochs_scale),
        "small-model ablation",
        log,
    )
    if reference is not None:
        for row in FRONTIER:
            folder = out / "runs" / f"frontier-{row.key}"
            if (rows is None or row.key in rows) and folder.is_dir():
                atomic_write_json(folder / "peer.json", reference)
    table = frontier_table(base, out)
    picks = chosen(table, base.run.rounds)
    atomic_write_text(out / "frontier.md", frontier_markdown(table, picks, base))
    from keras_models.core.machine import provenance

    found = {"rows": table, "chosen": picks, "rounds": base.run.rounds}
    atomic_write_json(out / "frontier.json", {"provenance": provenance(command), **found})
    from .frontier_plot import plot_frontier  # matplotlib: only when drawing

    plot_frontier(table, recipes_by_row(picks), out / "frontier.png", base.run.rounds, PUBLIC_BEST)
    log(f"wrote {out / 'frontier.md'} and {out / 'frontier.png'}")
    return {"rows": table, "chosen": picks}
