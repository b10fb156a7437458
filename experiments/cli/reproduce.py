"""Reproduce the report's Table I and Figures 4-7 in one command.

    python scripts/reproduce.py --rounds 10 --test-data ../shared/mnist            # the report's settings
    python scripts/reproduce.py --recipe fast --rounds 10 --test-data ../shared/mnist
    python scripts/reproduce.py --models mlp,cnn_aux --figures 7 --rounds 1 --epochs-scale 0.1   # a quick look

Rerunning a command with the same --out continues a stopped study: finished rounds are kept.
Interrupted, it prints that command.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from keras_models.cli import (
    ArgumentParser,
    DefaultsFormatter,
    add_config_args,
    command_line,
    config_from_args,
    positive_float,
    run_cli,
)
from keras_models.training.config import Config
from keras_models.training.recipes import RECIPES, describe_recipes

from ..ablation_rows import ABLATION
from ..frontier import FRONTIER
from ..peer import DEFAULT_PEER, DEFAULT_PEER_TEXT
from ..study import FIGURES, MODELS

STUDY_SETTINGS = (
    "rounds",
    "pairs",
    "seed",
    "pairs_per_study",
    "data",
    "test_data",
    "strategy",
    "precision",
    "classifier_softmax",
    "workers",
    "ray_address",
    "stack",
    "jit_compile",
    "quiet",
)


def name_list(choices, convert=str):
    def parse(text):
        if text == "none":
            return []
        try:
            values = [convert(v) for v in text.split(",") if v.strip()]
        except ValueError:
            values = None
        if not values or any(v not in choices for v in values):
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(map(str, choices))}; got {text!r}"
            )
        return values

    return parse


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="reproduce.py", description=__doc__.split("\n\n")[0], formatter_class=DefaultsFormatter)
    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="report",
        help=f"{describe_recipes()}; report builds the report's networks",
    )
    p.add_argument("--models", type=name_list(MODELS), default=list(MODELS), help="Table I models to run")
    p.add_argument(
        "--figures",
        type=name_list(sorted(FIGURES), int),
        default=sorted(FIGURES),
        help="figures to draw (their curves of the --models only), or 'none'",
    )
    p.add_argument("--epochs-scale", type=positive_float, default=1.0, help="multiply every recipe's epochs")
    p.add_argument(
        "--out",
        help="results folder (tables, figures, runs/); default: a new runs/study-<time> "
        "or runs/ablation-<time>. A folder that holds a study of other settings is refused",
    )
    # The settings every model of the study trains with, declared once with train.py's.
    add_config_args(p, only=STUDY_SETTINGS, defaults={"rounds": 10})
    p.add_argument(
        "--ablation",
        action="store_true",
        help="instead of Table I: the cnn_aux ablation (results in <out>/ablation.md)",
    )
    p.add_argument(
        "--frontier",
        action="store_true",
        help="instead of Table I: the small-model ablation that chooses --recipe speedrun and best "
        "on dev pairs (results in <out>/frontier.md and frontier.png)",
    )
    p.add_argument(
        "--rows",
        default=None,
        help="with --ablation or --frontier: the rows to train (default all), or 'none'; the table "
        "shows every finished row",
    )
    p.add_argument(
        "--peer",
        type=Path,
        nargs="?",
        const=DEFAULT_PEER,
        default=None,
        help="with --frontier: first run the peer (needs torch and --test-data), whose training seconds set "
        f"the budgets of the sprint and the speedrun (default script: {DEFAULT_PEER_TEXT})",
    )
    return p.parse_args(argv)


def study_base(args: argparse.Namespace) -> Config:
    """The settings every run of the study shares. A study saves its runs and exports none of
    them, so a setting that forbids exporting (--classifier-softmax batch) needs no --no-export."""
    return config_from_args(args, Config(export=False))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.ablation and args.frontier:
        print("reproduce.py: error: choose one of --ablation and --frontier", file=sys.stderr)
        return 2
    if args.peer is not None and not args.frontier:
        print("reproduce.py: error: --peer needs --frontier", file=sys.stderr)
        return 2
    if args.rows is not None:
        if not (args.ablation or args.frontier):
            print("reproduce.py: error: --rows needs --ablation or --frontier", file=sys.stderr)
            return 2
        try:
            args.rows = name_list([r.key for r in (FRONTIER if args.frontier else ABLATION)])(args.rows)
        except argparse.ArgumentTypeError as e:
            print(f"reproduce.py: error: argument --rows: {e}", file=sys.stderr)
            return 2

    kind = "ablation" if args.ablation else "frontier" if args.frontier else "table"
    out = Path(args.out or f"runs/{'study' if kind == 'table' else kind}-{datetime.now():%Y%m%d-%H%M%S}")

    def job():
        from ..study import claim_folder, run_study

        base = study_base(args)
        if base.run.ray_address:  # before TensorFlow loads and anything is written
            from keras_models.training.ray_rounds import check_address

            check_address(base.run.ray_address)
        recipe = base.recipe
        # What makes two invocations the same study; models, figures, rows and rounds may grow.
        settings = {
            "epochs_scale": args.epochs_scale,
            "pairs": recipe.pairs,
            "seed": recipe.seed,
            "data": recipe.data,
            "test_data": recipe.test_data,
            **({"recipe": args.recipe} if kind == "table" else {}),
            # Named only when changed, so that studies claimed before the setting existed resume.
            **({"precision": base.spec.precision} if base.spec.precision != "float32" else {}),
            **({"classifier_softmax": "batch"} if base.spec.classifier_softmax == "batch" else {}),
            **({"pairs_per_study": recipe.pairs_per_study} if recipe.pairs_per_study != "fresh" else {}),
        }
        claim_folder(out, kind, settings)
        command = command_line("reproduce.py", argv, out=out)
        if args.ablation:
            from ..ablation import run_ablation

            run_ablation(base, out, rows=args.rows, epochs_scale=args.epochs_scale, command=command)
        elif args.frontier:
            from ..frontier import run_frontier

            run_frontier(base, out, rows=args.rows, epochs_scale=args.epochs_scale, peer=args.peer, command=command)
        else:
            run_study(base, out, args.recipe, args.models, args.figures, args.epochs_scale, command=command)

    return run_cli(job, "reproduce.py", lambda: command_line("reproduce.py", argv, out=out))


if __name__ == "__main__":
    sys.exit(main())
