"""Ask an exported SavedModel whether digit1 <= digit2, one JSON line per pair.

python scripts/predict.py saved_models/cc_aux/1 pairs.npy          # (N, 2, 14, 14) pixels 0-255
python scripts/predict.py saved_models/cc_aux/1 three.png seven.jpg [--invert]
"""

from __future__ import annotations

import argparse
import json
import sys

from keras_models.cli import ArgumentParser, run_cli


def parse_args(argv=None) -> argparse.Namespace:
    from keras_models.serving.runtimes import RUNTIMES

    p = ArgumentParser(prog="predict.py", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "saved_model",
        help="a SavedModel folder, e.g. saved_models/cc_aux/1, or a base path "
        "(saved_models/cc_aux), whose highest version answers",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="one .npy/.npz of shape (N, 2, 14, 14), or two image files (PNG, JPEG, ...)",
    )
    p.add_argument(
        "--invert",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the images are black digits on white (--no-invert: white on black); "
        "by default told from each image's border",
    )
    p.add_argument(
        "--runtime",
        choices=list(RUNTIMES),
        default="tensorflow",
        help="what answers: the SavedModel with TensorFlow (default), or the export's model.onnx with ONNX Runtime",
    )
    args = p.parse_args(argv)
    if len(args.inputs) > 2:
        p.error("give one array file or two image files")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    def job():
        from keras_models.api import Predictor
        from keras_models.serving.predict import load_pairs_array, pair_from_images

        # The inputs are read and checked before the model loads (seconds), and against its pixel range after.
        if len(args.inputs) == 1:
            pairs = load_pairs_array(args.inputs[0])
        else:
            # A blank image is a valid digit: answered, with a line that says it was blank.
            def warn(message):
                print(f"predict.py: warning: {message}", file=sys.stderr)

            pairs = pair_from_images(*args.inputs, invert=args.invert, on_blank=warn)
        # Like the server, it answers from the newest version that loads, and says what it skipped.
        predictor = Predictor(
            args.saved_model, on_skip=lambda m: print(f"predict.py: {m}", file=sys.stderr), runtime=args.runtime
        )
        rows = predictor.answer(pairs, args.inputs[0])
        for row in rows:
            print(json.dumps(row))

    return run_cli(job, "predict.py")


if __name__ == "__main__":
    sys.exit(main())
