"""Accuracy against training seconds, in one invocation: the peer (experiments/peer.py) and
train.py's recipes, each for the same rounds in a fresh process, optionally beside the same
recipes trained by another checkout of the project (`baseline`, the code before a change).
Machines are shared and vary from one run to the next, so only figures from one
invocation are compared; every entry records the machine it ran on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from keras_models.core.errors import ConfigError
from keras_models.core.files import atomic_write_json, atomic_write_text
from keras_models.training.results import read_results

from .peer import last_error_line, run_peers

ROOT = Path(__file__).resolve().parents[1]


def in_tree(tree: Path) -> dict:
    """The environment of a process that runs `tree`'s code: its folder first on the path, ahead
    of the installed (editable) package, which is this checkout's."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
    return env


def train_recipe(tree: Path, recipe: str, rounds: int, test_data: str, out: Path, seed: int) -> dict:
    """`scripts/train.py --recipe RECIPE` of the checkout `tree`, in a fresh process: its mean
    test accuracy, worst round, training seconds per round (as its results.json records them)
    and the command's wall-clock."""
    argv = [sys.executable, str(tree / "scripts" / "train.py"), "--model", "cnn_aux", "--recipe", recipe]
    # Absolute, since each checkout trains in its own folder.
    argv += ["--rounds", str(rounds), "--seed", str(seed), "--test-data", str(Path(test_data).resolve())]
    # Test curve off for every recipe: the peer scores its test pairs once, after training, and
    # a per-epoch test pass inside the timed fit would count against the recipes that keep one.
    argv += ["--out", str(out.resolve()), "--no-export", "--no-test-curve", "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=tree, env=in_tree(tree))
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise ConfigError(f"{tree.name}: train.py --recipe {recipe} failed: {last_error_line(done)}")
    r = read_results(out / "results.json")
    rounds_ok = [x for x in r["rounds"] if x["status"] == "ok"]
    return {
        "recipe": recipe,
        "rounds": r["rounds_ok"],
        "accuracy": [round(100 * x["test_accuracy"], 2) for x in rounds_ok],
        "mean": round(100 * r["test_accuracy_mean"], 2),
        "std": round(100 * r["test_accuracy_std"], 2),
        "worst": round(100 * min(x["test_accuracy"] for x in rounds_ok), 2),
        "train_s_per_round": round(r["seconds_mean"], 2),
        "seconds": [x["seconds"] for x in rounds_ok],
        # Earlier code records no wall_seconds per round; the command's wall-clock it does have.
        "round_wall_seconds": [x.get("wall_seconds") for x in rounds_ok],
        "wall_seconds": round(wall, 2),
        "params": r["params"],
        "machine": rounds_ok[0]["machine"],
        "commit": rounds_ok[0].get("commit"),
    }


def peer_entry(name: str, line: dict) -> dict:
    worst = min(line["accuracy"])
    return {"name": name, **line, "worst": worst}


def race(
    recipes: list[str],
    rounds: int,
    test_data: str,
    out: Path,
    peer: Path,
    baseline: Path | None = None,
    seed: int = 0,
    log=print,
    baseline_recipes: list[str] | None = None,
    command: str | None = None,
) -> dict:
    """The peer on the rounds' own pairs (on its recipe's 800 of them, then on all 1000), then
    each recipe, and after it the same recipe in `baseline` if given (for `baseline_recipes`
    only, if given: a recipe that the earlier code does not have is left out). Every entry's
    wall-clock is its command's, from its process's start to its end, divided by the rounds
    in `wall_s_per_round`."""
    from keras_models.data.images import EMBEDDED
    from keras_models.training.settings import Recipe

    if baseline is not None and not (baseline / "scripts" / "train.py").is_file():
        raise ConfigError(f"{baseline}: not a checkout of this project (no scripts/train.py)")
    out.mkdir(parents=True, exist_ok=True)
    peers = run_peers(peer, out, EMBEDDED, test_data, Recipe().pairs, seed, rounds, log)
    from keras_models.core.machine import provenance, summary

    peer_rows = [line for _, line in peers]
    peer_machines = [summary(line["machine"]) for line in peer_rows if "machine" in line]
    atomic_write_json(out / "peer.json", {"provenance": provenance(command, machines=peer_machines), "rows": peer_rows})
    entries = [peer_entry(name, line) for name, line in peers]
    trees = [("", ROOT)] + ([(" (before)", baseline)] if baseline else [])
    compared = recipes if baseline_recipes is None else [r for r in recipes if r in baseline_recipes]
    for recipe in recipes:
        for suffix, tree in trees if recipe in compared else trees[:1]:
            name = f"{recipe}{suffix}"
            log(f"{name}: {rounds} rounds")
            entry = {"name": name, **train_recipe(tree, recipe, rounds, test_data, out / name.replace(" ", ""), seed)}
            log(
                f"{name}: {entry['mean']:.2f} ± {entry['std']:.2f}% in {entry['train_s_per_round']:.2f} s of "
                f"training per round, {entry['wall_seconds']:.1f} s of wall-clock"
            )
            entries.append(entry)
    peer_s = entries[0]["train_s_per_round"]
    for e in entries:
        e["wall_s_per_round"] = round(e["wall_seconds"] / rounds, 2)
        e["seconds_over_peer"] = round(e["train_s_per_round"] / peer_s, 3)
        e["wall_over_peer"] = round(e["wall_seconds"] / entries[0]["wall_seconds"], 3)
    for recipe in compared if baseline else []:
        now, before = (next(e for e in entries if e["name"] == n) for n in (recipe, f"{recipe} (before)"))
        now["seconds_over_before"] = round(now["train_s_per_round"] / before["train_s_per_round"], 3)
        now["wall_over_before"] = round(now["wall_seconds"] / before["wall_seconds"], 3)
    result = {
        "rounds": rounds,
        "test_data": str(test_data),
        "pairs": "the same, given to the peer",
        "test_curve": False,
        "provenance": provenance(
            command, [e["commit"] for e in entries if e.get("commit")], [summary(e["machine"]) for e in entries]
        ),
        "entries": entries,
    }
    atomic_write_json(out / "race.json", result)
    atomic_write_text(out / "race.md", race_markdown(result))
    plot_race(result, out / "race.png")
    log(f"wrote {out / 'race.json'}, race.md and race.png")
    return result


def race_markdown(result: dict) -> str:
    """The race's table: accuracy, worst round, and both clocks with their ratios to the peer."""
    from keras_models.core.machine import summary

    lines = [
        f"{result['rounds']} rounds, every entry on the same training and test pairs; "
        f"one invocation on {summary(result['entries'][0]['machine'])}.",
        "",
        "| entry | training pairs | test acc. % | worst round | training s / round | wall-clock s / round "
        "| training / peer | wall-clock / peer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in result["entries"]:
        lines.append(
            f"| {e['name']} | {e.get('train_pairs', 1000)} | {e['mean']:.2f} ± {e['std']:.2f} | {e['worst']:.2f} "
            f"| {e['train_s_per_round']:.2f} | {e['wall_s_per_round']:.2f} | {e['seconds_over_peer']:.2f} "
            f"| {e['wall_over_peer']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def study_race(
    baseline: Path,
    rounds: int,
    epochs_scale: float,
    test_data: str,
    out: Path,
    workers: int = 1,
    precision: str = "float32",
    log=print,
    ray_address: str | None = None,
    stack: int = 1,
    jit_compile: bool = False,
    command: str | None = None,
) -> dict:
    """Table I (`reproduce.py --recipe report --figures none`) with fewer rounds and epochs, by
    `baseline` and then by this checkout (with `workers` Ray tasks at a time or on the Ray cluster
    at `ray_address`, `stack` rounds a model, XLA and `precision`), in fresh
    processes one after the other: wall seconds of each, per model seconds per round, test
    accuracies, and the ratios."""
    if not (baseline / "scripts" / "reproduce.py").is_file():
        raise ConfigError(f"{baseline}: not a checkout of this project (no scripts/reproduce.py)")
    entries = {}
    for name, tree in (("before", baseline), ("now", ROOT)):
        folder = (out / f"study-{name}").resolve()
        argv = [sys.executable, str(tree / "scripts" / "reproduce.py"), "--recipe", "report", "--figures", "none"]
        argv += ["--rounds", str(rounds), "--epochs-scale", str(epochs_scale), "--quiet", "--out", str(folder)]
        argv += ["--test-data", str(Path(test_data).resolve())]
        argv += ["--workers", str(workers)] if name == "now" and workers > 1 else []
        argv += ["--precision", precision] if name == "now" and precision != "float32" else []
        argv += ["--ray-address", ray_address] if name == "now" and ray_address else []
        argv += ["--stack", str(stack)] if name == "now" and stack > 1 else []
        argv += ["--jit-compile"] if name == "now" and jit_compile else []
        log(f"Table I by {tree}: {rounds} rounds, epochs x {epochs_scale}")
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tree, env=in_tree(tree))
        if done.returncode != 0:
            raise ConfigError(f"{tree}: reproduce.py failed: {last_error_line(done)}")
        table = json.loads((folder / "table.json").read_text())["rows"]
        entries[name] = {
            "tree": str(tree),
            "wall_s": round(time.perf_counter() - start, 1),
            "seconds_per_round": {r["model"]: r["seconds_per_round"] for r in table},
            "test_accuracy": {r["model"]: r.get("test_accuracy_mean") for r in table},
        }
        log(f"  {entries[name]['wall_s']:.0f} s")
    from keras_models.core.machine import describe, provenance

    result = {
        "provenance": provenance(command),
        "rounds": rounds,
        "epochs_scale": epochs_scale,
        "workers_now": workers,
        "ray_address_now": ray_address,
        "stack_now": stack,
        "jit_compile_now": jit_compile,
        "precision_now": precision,
        **entries,
        "wall_speedup": round(entries["before"]["wall_s"] / entries["now"]["wall_s"], 2),
        "training_speedup": {
            m: round(s / entries["now"]["seconds_per_round"][m], 2)
            for m, s in entries["before"]["seconds_per_round"].items()
        },
        "machine": describe(),
    }
    atomic_write_json(out / "study_race.json", result)
    log(f"Table I: {result['wall_speedup']}x faster in wall time; training per round: {result['training_speedup']}")
    return result


def plot_race(result: dict, path: Path) -> None:
    """Mean test accuracy (± std over rounds) against seconds per round, one point an entry: on
    the left the training seconds, on the right the command's wall-clock; the CPU in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_models.core.machine import summary

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, key, label in (
        (axes[0], "train_s_per_round", "training seconds per round (log)"),
        (axes[1], "wall_s_per_round", "wall-clock seconds per round, the command's (log)"),
    ):
        for e in result["entries"]:
            peer = e["name"].startswith("peer")
            color = "tab:red" if peer else ("tab:gray" if "before" in e["name"] else "tab:blue")
            ax.errorbar(e[key], e["mean"], yerr=e["std"], fmt="s" if peer else "o", capsize=3, color=color)
            ax.annotate(e["name"], (e[key], e["mean"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
        seconds = [e[key] for e in result["entries"]]
        low, high = min(seconds) / 1.4, max(seconds) * 2.0  # room for the labels right of the points
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if low <= t <= high]
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test accuracy %, mean ± std over {result['rounds']} rounds")
    machine = summary(result["entries"][0]["machine"])
    fig.suptitle(f"One invocation, the same pairs for every entry, on {machine}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
