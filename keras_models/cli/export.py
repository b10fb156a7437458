"""Export a trained `.keras` model as a SavedModel in the TF Serving layout
`<export-dir>/<model>/<version>/` (the next free version; an existing one is never overwritten).

    python scripts/export.py --model-file runs/cc_aux-.../model.keras
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keras_models.cli import ArgumentParser, run_cli
from keras_models.models.architectures import NAMES


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="export.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-file", required=True, help="a .keras file written by train.py")
    p.add_argument(
        "--model",
        choices=NAMES,
        help="the architecture the file holds (checked); needed when no run's config.json lies above the file",
    )
    p.add_argument("--export-dir", default="saved_models", help="root of the exports (default saved_models)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def job():
        from keras_models.core.errors import ModelFileError
        from keras_models.models import architectures
        from keras_models.models.saving import load_keras_model
        from keras_models.serving.export import check_contract, export_saved_model
        from keras_models.training.config import load_config

        model = load_keras_model(args.model_file)
        # A run folder's model.keras (or round-NN/model.keras) has its config.json above it: the
        # architecture is the one the run was configured with, never guessed from the file.
        folders = [p for p in Path(args.model_file).resolve().parents[:2] if (p / "config.json").is_file()]
        cfg = load_config(folders[0] / "config.json") if folders else None
        if cfg is None and not args.model:
            raise ModelFileError(
                f"{args.model_file}: no run's config.json above it to read its architecture from; name it with --model"
            )
        if cfg is not None and args.model and cfg.spec.model != args.model:
            raise ModelFileError(f"{args.model_file}: holds a {cfg.spec.model} model, not {args.model}")
        arch = cfg.arch if cfg is not None else architectures.get(args.model)
        single = cfg is not None and cfg.recipe.members == 1 and not cfg.recipe.tta
        check_contract(model, args.model_file, arch, cfg.spec if single else None)
        card = run_card(cfg, folders[0]) if cfg is not None else None
        print(f"exported SavedModel: {export_saved_model(model, args.export_dir, arch.name, metadata=card)}")

    return run_cli(job, "export.py")


def run_card(cfg, folder: Path) -> dict:
    """The model card of a run's model, as train.py writes it beside its own export: from the
    run's config.json and results.json, and the pixel range of its training images."""
    import json

    from keras_models.data.images import load_data
    from keras_models.training.run import model_card

    try:
        results = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        results = {}
    train_images, _ = load_data(cfg.recipe.data, cfg.recipe.test_data)
    return model_card(cfg, folder, results if isinstance(results, dict) else {}, train_images.images)


if __name__ == "__main__":
    sys.exit(main())
