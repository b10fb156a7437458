"""Where a training step goes: TensorFlow's convolution kernels timed alone at a model's shapes,
and the self time per op type in a real profiler trace, named by the op whichever kernel
library (oneDNN or Eigen) ran it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np

from keras_models.models.builder import targets_for

from .benchmark import synthetic_pairs


def conv_kernels(x, k, dy, padding: str = "same") -> dict:
    """The three kernels of one convolution's training step, each a traced call on the given
    input `x`, kernel `k` and output gradient `dy`, with the layer's `padding` (the project's
    convolutions are "same", the report's "valid")."""
    import tensorflow as tf

    images, h, w, cin = x.shape
    f = k.shape[-1]
    strides, padding = [1, 1, 1, 1], padding.upper()
    return {
        "forward": tf.function(lambda: tf.nn.conv2d(x, k, 1, padding)),
        "backprop_input": tf.function(
            lambda: tf.raw_ops.Conv2DBackpropInput(
                input_sizes=[images, h, w, cin], filter=k, out_backprop=dy, strides=strides, padding=padding
            )
        ),
        "backprop_filter": tf.function(
            lambda: tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=[3, 3, cin, f], out_backprop=dy, strides=strides, padding=padding
            )
        ),
    }


def conv_breakdown(model, batch: int, reps: int = 20) -> list[dict]:
    """Milliseconds of TensorFlow's own kernels for each convolution of the model at its shapes:
    forward, backprop to the input and backprop to the filter (the three kernels of a training
    step), each timed alone in a tf.function. Their sum against the whole step shows how much
    of the step is the convolution kernels, which no Keras-level change can make faster."""
    import tensorflow as tf

    rows = []
    classifier = model.get_layer("classifier") if "classifier" in [layer.name for layer in model.layers] else model
    images = 2 * batch if classifier is not model else batch
    for layer in classifier.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        _, h, w, cin = layer.input.shape
        f, dtype = layer.filters, layer.compute_dtype  # bfloat16 under --precision mixed_bfloat16
        x = tf.random.normal((images, h, w, cin), dtype=dtype)
        k = tf.random.normal((3, 3, cin, f), dtype=dtype)
        dy = tf.random.normal((images, *layer.output.shape[1:3], f), dtype=dtype)
        kernels = conv_kernels(x, k, dy, layer.padding)
        row = {"layer": layer.name, "shape": f"{h}x{w}x{cin}->{f}", "dtype": dtype, "backprop_input": 0.0}
        if not rows:
            del kernels["backprop_input"]  # the first convolution's input is data: no gradient is taken
        for name, fn in kernels.items():
            fn()
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            row[name] = round(1000 * float(np.median(times)), 2)
        rows.append(row)
    return rows


def kernel_op(op_type: str) -> str:
    """The TensorFlow op that a profiled kernel computes, whichever library ran it: oneDNN's
    kernels carry prefixes and fused suffixes (`_MklNativeConv2DBackpropFilterWithBias` is a
    Conv2DBackpropFilter, `_MklMatMul` and `_FusedMatMul` are MatMuls)."""
    for prefix in ("_MklNative", "_Mkl", "_"):
        if op_type.startswith(prefix):
            op_type = op_type[len(prefix) :]
            break
    op_type = op_type.removeprefix("Fused").removesuffix("WithBias")
    return op_type


def profile_op_types(model, batch: int, steps: int, logdir: Path, warmup: int = 5) -> list[dict]:
    """TensorFlow's profiler over `steps` training steps (one per call): the trace stays in
    `logdir` for TensorBoard's Profile tab; returned is the self time per op type, summed from
    the profiler's framework-op table, largest first."""
    import glob

    import tensorflow as tf

    # TensorFlow's own converter of profiler traces (what TensorBoard's profile plugin calls):
    # a private module, but it spares the product a dependency on xprof.
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    # An unusable folder fails here, as one OSError line, before any step is run.
    logdir.mkdir(parents=True, exist_ok=True)
    pairs = synthetic_pairs(batch)
    data = (pairs.x, targets_for(model, pairs))
    model.fit(tf.data.Dataset.from_tensors(data).repeat(warmup), epochs=1, verbose=0, shuffle=False)  # traces the step
    tf.profiler.experimental.start(str(logdir))
    model.fit(tf.data.Dataset.from_tensors(data).cache().repeat(steps), epochs=1, verbose=0, shuffle=False)
    tf.profiler.experimental.stop()
    paths = sorted(glob.glob(str(logdir / "plugins" / "profile" / "*" / "*.xplane.pb")))[-1:]
    raw, ok = plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok:
        raise RuntimeError(f"the profiler could not summarise {paths}: {raw[:200]!r}")
    table = json.loads(raw)[0]
    cols = [c["id"] for c in table["cols"]]
    per_type: dict[str, float] = {}
    for row in table["rows"]:
        v = dict(zip(cols, (c["v"] for c in row["c"]), strict=False))
        if v["type"] != "IDLE":
            per_type[v["type"]] = per_type.get(v["type"], 0.0) + v["total_self_time"]
    total = sum(per_type.values())
    # Shares only: the table's self times add up the intra-op threads' time and the
    # profiler's own overhead, so they exceed the wall time of a step.
    return [
        {"op_type": k, "op": kernel_op(k), "share": round(t / total, 4)}
        for k, t in sorted(per_type.items(), key=lambda kv: -kv[1])
    ]
