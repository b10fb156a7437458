"""What `import keras_models` offers beyond the builders: a run from settings, as train.py runs
it, and an exported model that answers pairs or images, as predict.py does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_models.training.config import Config


def train(cfg: Config, log=print, levers=()) -> dict:
    """Train `cfg.run.rounds` rounds of fresh pairs, write the run folder (`cfg.run.out`, or a new
    runs/<model>-<time>) and export the last round's model: what `scripts/train.py` does with
    the same settings. Returns results.json's contents; `results["export"]` is the export.
    `levers`: changes beyond the settings, each a `Lever` (keras_models.training.levers; the
    study's are in experiments/levers.py), a user's own among them.

        >>> import keras_models as km
        >>> results = km.train(km.Config(model="cnn_aux", epochs=3, pairs=500, out="runs/demo"))
        >>> results["test_accuracy_mean"], results["export"]
    """
    from keras_models.training.run import run

    return run(cfg, log=log, levers=levers)


class Predictor:
    """An export, loaded once, that answers as predict.py does: one dict per pair with P(digit1
    <= digit2), the answer, and each digit's class and confidence. A base path
    (saved_models/cnn_aux) loads its newest version that loads, as the server does; `runtime`
    "onnx" runs its model.onnx with ONNX Runtime instead of the SavedModel with TensorFlow.

        >>> import keras_models as km
        >>> predictor = km.Predictor("saved_models/cnn_aux")
        >>> predictor.answer(pairs)  # (N, 2, 14, 14), pixels 0-255
        [{'compare': 0.00723, 'leq': False, 'digit1': 7, 'digit1_confidence': 0.8569, ...}]
        >>> predictor.answer_images("three.png", "seven.jpg")  # any size, gray or RGB
    """

    def __init__(self, path: str | Path, on_skip=None, runtime: str = "tensorflow"):
        from keras_models.serving.loaded import load_export

        self.export = load_export(path, on_skip, runtime)

    path = property(lambda self: self.export.path)
    card = property(lambda self: self.export.card)
    version = property(lambda self: self.export.version)

    def answer(self, pairs, where: str = "pairs") -> list[dict]:
        """Pairs (N, 2, 14, 14) in the training pairs' pixel units, checked by the pair
        contract first (against the export's pixel range); a DataError names `where` and says
        what is wrong with them."""
        from keras_models.core.errors import DataError
        from keras_models.data.contract import check_pairs
        from keras_models.serving.predict import answers

        return answers(self.export, check_pairs(np.asarray(pairs), where, DataError, self.export.pixel_range))

    def answer_images(self, first, second, invert: bool | None = None) -> dict:
        """Two image files, read as MNIST made its digits (predict.mnist_digit)."""
        from keras_models.serving.predict import answers, pair_from_images

        return answers(self.export, pair_from_images(first, second, invert=invert))[0]
