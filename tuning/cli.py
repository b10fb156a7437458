"""Search depth and width (and comparer size, dropout, learning rate) with keras-tuner, on a
validation split of the training pairs or on dev pairs over several rounds; write
best_hparams.json, trials.md and trials.png.

    python scripts/tune.py --model cnn_aux --tuner bayesian --max-trials 20 --epochs 15 --directory tuner_runs
    python scripts/tune.py --model cnn_aux --test-data ../shared/mnist --dev-pairs 1000 --executions 2 --max-mflop 20
    python scripts/train.py --model cnn_aux --hparams tuner_runs/cnn_aux-bayesian/best_hparams.json

Rerunning the same command resumes the search (finished trials are kept).
"""

from __future__ import annotations

import argparse
import sys

from keras_models.cli import (
    ArgumentParser,
    DefaultsFormatter,
    add_config_args,
    config_from_args,
    positive_float,
    positive_int,
    run_cli,
)
from keras_models.training.config import Config

# What train.py does and a search does not: rounds, ensembles, swapped pairs, outputs.
TRAIN_ONLY = (
    "rounds",
    "member",
    "members",
    "tta",
    "swap",
    "out",
    "export_dir",
    "export",
    "tensorboard",
    "backup_interval",
    "test_curve",
)


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="tune.py", description=__doc__.split("\n\n")[0], formatter_class=DefaultsFormatter)
    s = p.add_argument_group("search")
    s.add_argument(
        "--tuner",
        choices=("random", "bayesian", "hyperband"),
        default="random",
        help="keras-tuner's search: random, Bayesian optimisation, or Hyperband's brackets of epochs",
    )
    s.add_argument("--max-trials", type=positive_int, default=10, help="trials (random, bayesian)")
    s.add_argument("--directory", default="tuner_runs", help="where keras-tuner keeps its trials and the report")
    s.add_argument("--project-name", help="subfolder of --directory (default <model>-<tuner>)")
    s.add_argument(
        "--executions",
        type=positive_int,
        default=1,
        help="with --dev-pairs: train each trial this many times, each on another round's pairs, "
        "and score the mean of their dev accuracies",
    )
    s.add_argument(
        "--max-mflop",
        type=positive_float,
        metavar="MFLOP",
        help="fail, untrained, the trials whose model costs more per pair (default: no limit)",
    )
    add_config_args(p, skip=TRAIN_ONLY)
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 10
    if args.lr is None:
        args.lr = 1e-3
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    def job():
        from .search import Search, search

        base = config_from_args(args, Config(validation_split=0.2))
        plan = Search(
            args.tuner,
            args.max_trials,
            base.num_epochs,
            args.directory,
            args.project_name,
            args.executions,
            args.max_mflop,
        )
        search(base, plan)

    return run_cli(job, "tune.py")


if __name__ == "__main__":
    sys.exit(main())
