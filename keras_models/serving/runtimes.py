"""The runtimes that answer an export, by name: TensorFlow, which runs the SavedModel's
`serving_default`, and ONNX Runtime, which runs the `model.onnx` written beside it and needs no
TensorFlow (requirements-onnx.txt). Each loads one version folder into a handle, checked against
the pair contract, and runs checked pairs through it; `loaded.LoadedExport` holds the one it
loaded, so that the server, predict.py and `Predictor` answer alike whichever runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_models.core.errors import ConfigError, ModelFileError
from keras_models.data.contract import PAIR_SHAPE, SHAPE_TEXT, output_shape
from keras_models.serving.export import ONNX_FILE, load_saved_model, run_signature

BATCH = 1000  # pairs a call


class TensorFlowRuntime:
    name = "tensorflow"
    platform = "tensorflow_savedmodel"  # as the Open Inference Protocol's metadata names it (Triton's names)

    def load(self, path: Path):
        """(handle, output names): the SavedModel (kept alive) and its serving signature."""
        try:
            import tensorflow as tf
        except ImportError:  # not a fault of one version: no version is tried
            raise ConfigError(
                "the tensorflow runtime needs TensorFlow (requirements.txt); without it, give --runtime onnx"
            ) from None

        loaded, signature = load_saved_model(path)
        _, inputs = signature.structured_input_signature
        spec = inputs.get("pair")
        if spec is None or spec.dtype != tf.float32 or tuple(spec.shape) != (None, *PAIR_SHAPE):
            raise ModelFileError(f"{path}: serving_default does not take pair float32 {SHAPE_TEXT} (it takes {inputs})")
        return (loaded, signature), tuple(sorted(signature.structured_outputs))

    def run(self, handle, pairs: np.ndarray) -> dict:
        return run_signature(handle[1], pairs, BATCH)


class OnnxRuntime:
    name = "onnx"
    platform = "onnxruntime_onnx"

    def load(self, path: Path):
        """(handle, output names): an ONNX Runtime session of the version's model.onnx."""
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("--runtime onnx needs onnxruntime: pip install -r requirements-onnx.txt") from None
        file = Path(path) / ONNX_FILE
        if not file.is_file():
            raise ModelFileError(
                f"{path}: no {ONNX_FILE} (an export in bfloat16, or from before exports wrote one, has none)"
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are about graph rewrites
        try:
            session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ONNX Runtime raises its own types for a broken file
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise ModelFileError(f"{file}: cannot load it ({type(e).__name__}: {first})") from None
        inputs = session.get_inputs()
        takes = [(i.name, i.type, list(i.shape[1:])) for i in inputs]
        if takes != [("pair", "tensor(float)", list(PAIR_SHAPE))]:
            raise ModelFileError(f"{file}: does not take pair float32 {SHAPE_TEXT} (it takes {takes})")
        return session, tuple(sorted(o.name for o in session.get_outputs()))

    def run(self, session, pairs: np.ndarray) -> dict:
        names = [o.name for o in session.get_outputs()]
        if len(pairs) == 0:  # empty outputs of the right shapes, as the SavedModel gives
            return {k: np.zeros((0, *output_shape(k)), np.float32) for k in names}
        parts = [
            dict(zip(names, session.run(names, {"pair": pairs[i : i + BATCH]}), strict=True))
            for i in range(0, len(pairs), BATCH)
        ]
        return {k: np.concatenate([p[k] for p in parts]) for k in names}


RUNTIMES = {r.name: r for r in (TensorFlowRuntime(), OnnxRuntime())}
