"""Export a trained `.keras` model as a SavedModel in the TF Serving layout
`<export-dir>/<model>/<version>/` (the next free version; an existing one is never overwritten).

    python scripts/export.py --model-file runs/cc_aux-.../model.keras
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keras_models.cli import run_cli
from keras_models.models.architectures import NAMES


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="export.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-file", required=True, help="a .keras file written by train.py")
    p.add_argument("--model", choices=NAMES, help="the architecture the file must hold (checked)")
    p.add_argument("--export-dir", default="saved_models", help="root of the exports (default saved_models)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def job():
        from keras_models.serving.export import ModelFileError, check_contract, export_saved_model, load_keras_model
        from keras_models.training.config import load_config

        model = load_keras_model(args.model_file)
        if args.model and model.name != args.model:
            raise ModelFileError(f"{args.model_file}: holds a {model.name} model, not {args.model}")
        # A run folder's model.keras (or round-NN/model.keras) has its config.json above it.
        found = [
            p / "config.json" for p in Path(args.model_file).resolve().parents[:2] if (p / "config.json").is_file()
        ]
        cfg = load_config(found[0]) if found else None
        check_contract(model, args.model_file, cfg if cfg and cfg.members == 1 and not cfg.tta else None)
        print(f"exported SavedModel: {export_saved_model(model, args.export_dir, model.name)}")

    return run_cli(job, "export.py")


if __name__ == "__main__":
    sys.exit(main())
