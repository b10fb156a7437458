"""SavedModel export in the TF Serving layout `<root>/<model>/<version>/`, and safe loading.

The `serving_default` signature takes `pair` float32 [None, 2, 14, 14] in raw pixel units and
returns `compare` [None, 1] and, for the weight-sharing models, `digit1`/`digit2` [None, 10].
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from keras_models.core.errors import ModelFileError
from keras_models.core.files import remove_tree

TMP_PREFIX = ".tmp-"  # TF Serving only loads numeric folder names, so it never sees these
ONNX_FILE = "model.onnx"  # beside saved_model.pb, for ONNX Runtime (serving.runtimes); TF Serving ignores it


def versions(base: Path) -> list[int]:
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def write_saved_model(model, path: Path) -> None:
    """The model behind a `serving_default` endpoint that checks its input first, so that
    TF Serving answers a malformed request with a clear error instead of one from deep inside
    the graph (or, for NaN pixels, NaN probabilities)."""
    import keras
    import tensorflow as tf

    from keras_models.data.contract import NOT_FINITE, PAIR_SHAPE

    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[tf.TensorSpec((None, *PAIR_SHAPE), tf.float32, name="pair")])
    def serve(pair):
        # A signature alone does not check shapes when called; ensure_shape does.
        pair = tf.ensure_shape(pair, (None, *PAIR_SHAPE), name="pair_shape_is_N_2_14_14")
        pair = tf.debugging.check_numerics(pair, f"pair holds {NOT_FINITE}")
        # An empty batch gets empty outputs of the right shapes under either kernel library.
        # oneDNN's convolutions (on by default on CPUs with AVX-512 or AMX) fail on a batch of
        # 0 ("Incompatible shapes: [0,7,7,32] vs. [64]") where Eigen's answer; the same kind of
        # fault as tensorflow/tensorflow#14657, worked around the same way, with a cond: the
        # model sees one blank pair, and none of its answers are kept.
        n = tf.shape(pair)[0]
        x = tf.cond(n > 0, lambda: pair, lambda: tf.zeros((1, *PAIR_SHAPE), pair.dtype))
        return {k: v[:n] for k, v in model(x, training=False).items()}

    archive.add_endpoint("serving_default", serve)
    archive.write_out(str(path), verbose=False)


def write_onnx(model, path: Path) -> bool:
    """The model's inference function as ONNX (tf2onnx, opset 17), input `pair` (None, 2, 14,
    14) float32 and the model's named outputs; False, and nothing written, for a model that
    computes in bfloat16 (ONNX Runtime's CPU kernels take no bfloat16 convolutions). The pair
    checks of the SavedModel's signature (shape, finite pixels) are the callers' there: the
    server and predict.py check every pair before it reaches either runtime."""
    import tensorflow as tf
    import tf2onnx

    from keras_models.data.contract import PAIR_SHAPE

    def layers(m):
        return [x for layer in m.layers for x in (layers(layer) if hasattr(layer, "layers") else [layer])]

    if any(getattr(layer, "compute_dtype", "float32") == "bfloat16" for layer in layers(model)):
        return False
    spec = (tf.TensorSpec((None, *PAIR_SHAPE), tf.float32, name="pair"),)

    @tf.function(input_signature=spec)
    def infer(pair):
        return model(pair, training=False)

    tf2onnx.convert.from_function(infer, input_signature=spec, opset=17, output_path=str(path))
    return True


METADATA = "metadata.json"  # beside saved_model.pb; TF Serving ignores it


def check_contract(model, where: str, arch, spec=None) -> None:
    """The serving contract of a model of the architecture `arch` (a registry entry, read from
    the run's saved config): input `pair` (None, 2, 14, 14), the architecture's outputs with their
    shapes, and, given the run's ModelSpec, the same layers with the same weight shapes as
    `build_model(spec)`. Anything else is one ModelFileError line."""
    from keras_models.data.contract import OUTPUT_SHAPES, PAIR_SHAPE, SHAPE_TEXT

    try:
        inputs, output = model.inputs, model.output
    except (AttributeError, ValueError):  # a subclassed or never-called model has no graph
        raise ModelFileError(f"{where}: not a functional model with the input `pair`") from None
    if len(inputs) != 1 or tuple(inputs[0].shape) != (None, *PAIR_SHAPE):
        raise ModelFileError(f"{where}: takes {[tuple(i.shape) for i in inputs]}, not pair {SHAPE_TEXT}")
    outputs = output if isinstance(output, dict) else {}
    shapes = {k: tuple(v.shape) for k, v in outputs.items()}
    expected = {k: (None, *OUTPUT_SHAPES[k]) for k in arch.outputs}
    if shapes != expected:
        raise ModelFileError(f"{where}: outputs {shapes}, a {arch.name} has {expected}")

    def names(m):  # an ensemble holds its members, each with its classifier
        return {layer.name for layer in m.layers} | {
            n for layer in m.layers if hasattr(layer, "layers") for n in names(layer)
        }

    if arch.shared and "classifier" not in names(model):
        raise ModelFileError(f"{where}: a {arch.name} shares one `classifier` sub-model; this model has none")
    if spec is not None:
        from keras_models.models.builder import build_model

        def structure(m):
            return [(w.path.split("/", 1)[-1], tuple(w.shape)) for w in m.weights]

        if structure(model) != structure(build_model(spec)):
            raise ModelFileError(f"{where}: its layers differ from a {arch.name} built from the run's config.json")


def export_saved_model(model, root: str | Path, name: str | None = None, metadata: dict | None = None) -> Path:
    """Export to the next free version: the SavedModel, and beside it the same model as ONNX
    (`model.onnx`, for ONNX Runtime without TensorFlow). Written to a temporary folder beside the
    target and renamed into place, so a kill half-way leaves no version folder for TF Serving to
    load. `metadata` (the model card: config, run, accuracy, pixel range, versions) goes beside it.

        >>> export_saved_model(model, "saved_models")  # saved_models/<model.name>/<next version>
    """
    from keras_models.models.builder import over_batch

    if over_batch(model):
        raise ModelFileError(
            f"{name or model.name}: its classifier's softmax runs over the batch (--classifier-softmax batch), so its "
            "answer to a pair depends on the pairs beside it; such a model is never exported"
        )
    import tensorflow as tf

    base = Path(root) / (name or model.name)
    base.mkdir(parents=True, exist_ok=True)
    remove_stale_exports(base)
    version = (versions(base) or [0])[-1] + 1
    target = base / str(version)
    tmp = base / f"{TMP_PREFIX}{version}-{os.getpid()}"
    remove_tree(tmp)
    try:
        write_saved_model(model, tmp)
        write_onnx(model, tmp / ONNX_FILE)
        if metadata is not None:
            (tmp / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
        # os.rename onto an existing non-empty folder fails, and onto an empty one would
        # replace it: check, so that an existing version is never overwritten.
        if target.exists():
            raise FileExistsError(f"{target} appeared while exporting; not overwriting it")
        os.rename(tmp, target)
    except tf.errors.OpError as e:  # TensorFlow's own writes fail with its own types (a full disk: ResourceExhausted)
        reason = e.message.rsplit(";", 1)[-1].strip()
        raise OSError(errno.ENOSPC if "No space left" in reason else None, reason, str(target)) from None
    finally:
        remove_tree(tmp)
    return target


def remove_stale_exports(base: Path) -> None:
    """The `.tmp-<version>-<pid>` folders of exports whose process is gone (killed mid-way):
    nothing will finish them."""
    for folder in base.glob(f"{TMP_PREFIX}*-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            remove_tree(folder)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def read_metadata(path: str | Path) -> dict:
    """The model card beside a SavedModel ({} for an export without one)."""
    path = Path(path) / METADATA
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}


def run_signature(signature, pairs, batch_size: int = 1000) -> dict:
    """The signature's outputs for `pairs` (already checked), as numpy arrays, `batch_size` pairs a call."""
    import numpy as np
    import tensorflow as tf

    parts = [
        {k: v.numpy() for k, v in signature(pair=tf.constant(pairs[i : i + batch_size])).items()}
        for i in range(0, len(pairs), batch_size)
    ]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def load_saved_model(path: str | Path):
    """A SavedModel's serving signature; a missing or truncated one is one clear line."""
    import tensorflow as tf

    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise ModelFileError(f"{path}: no saved_model.pb, not a SavedModel folder")
    try:
        loaded = tf.saved_model.load(str(path))
        return loaded, loaded.signatures["serving_default"]
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ModelFileError(f"{path}: cannot load the SavedModel ({type(e).__name__}: {first})") from None
