"""Train one of the six digit-comparison models over rounds of freshly drawn MNIST pairs,
report mean ± std test accuracy, and export the last round's model as a SavedModel.

    python scripts/train.py --model cc_aux
    python scripts/train.py --model cnn_aux --epochs 25 --rounds 3 --lr 1e-3 --test-data ../shared/mnist
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keras_models.cli import ArgumentParser, DefaultsFormatter, add_config_args, command_line, config_from_args, run_cli
from keras_models.core.errors import RunError
from keras_models.training.config import Config
from keras_models.training.recipes import TRAIN_RECIPES, describe_recipes, recipe_changes


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0], formatter_class=DefaultsFormatter)
    p.add_argument(
        "--recipe",
        choices=TRAIN_RECIPES,
        help=f"{describe_recipes()}; report builds the report's networks; "
        "for cnn_aux (or any conv architecture with a shared classifier and digit losses): sprint "
        "and speedrun (the winners of results/archive/frontier.md within 1 and 3.5 times the seconds of the "
        "best public recipe), best (within 15 min), and stacked (the tuned 600k-parameter classifier "
        "of results/archive/ablation.md); flags given here still override it",
    )
    p.add_argument(
        "--hparams",
        metavar="JSON",
        help="start from the architecture and learning rate of a tune.py best_hparams.json; "
        "flags given here still override it",
    )
    add_config_args(p)
    return p.parse_args(argv)


def hparams_config(path: str) -> Config:
    import json

    from keras_models.core.errors import ConfigError

    try:
        found = json.loads(Path(path).read_text())["config"]
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: not a best_hparams.json written by tune.py") from None
    if not isinstance(found, dict):
        raise ConfigError(f"{path}: its `config` is {type(found).__name__}, not the settings tune.py writes")
    return Config.from_groups(found).replace(extra={"hparams": str(path)})


def build_config(args: argparse.Namespace) -> Config:
    """Defaults, then the hyperparameter file, then the recipe, then the flags given."""
    base = hparams_config(args.hparams) if args.hparams else Config()
    if args.recipe:
        base = base.replace(**recipe_changes(args.recipe, args.model or base.spec.model))
    return config_from_args(args, base)


def main(argv=None) -> int:
    args = parse_args(argv)

    cfg = None

    def job():
        nonlocal cfg
        from keras_models.core.files import remove_if_unused
        from keras_models.data.images import load_data
        from keras_models.training.config import check_before_training, check_folder, default_out

        cfg = build_config(args)
        # The data and the folders before TensorFlow loads: a mistake fails fast and alone.
        images = load_data(cfg.recipe.data, cfg.recipe.test_data)
        check_before_training(cfg, images)
        # A default folder is made now, so that an interrupted run can name it; a run refused
        # before it wrote anything takes it away again.
        claimed = None if cfg.run.out else default_out(cfg.spec.model)
        cfg = cfg if claimed is None else cfg.replace(out=claimed)
        try:
            check_folder(cfg)
            from keras_models.training.run import run

            results = run(cfg, images=images, command=command_line("train.py", argv, out=cfg.run.out))
        except BaseException:
            if claimed is not None:
                remove_if_unused(claimed)
            raise
        if not results["rounds_ok"]:
            raise RunError("every round failed; see results.json")

    return run_cli(job, "train.py", lambda: command_line("train.py", argv, out=cfg.run.out) if cfg else None)


if __name__ == "__main__":
    sys.exit(main())
