"""The least time Table I's training can take with TensorFlow's kernels on this machine: each
model's convolution and matmul kernels, and nothing else, run at the study's own shapes.

A training step of the report's models is, at the least, three kernels per Conv2D or Dense
layer: the forward pass, the gradient to the layer's input (not for the first layer, whose
input is data) and the gradient to its kernel. The per-epoch test curve adds the forward
kernels over the test pairs. Everything else a step does (batch norm, ReLU, pooling, dropout,
the losses, Adam, the input pipeline, Keras' own work) is left out, so the sum is a lower bound
for any change that keeps the float32 arithmetic: stacking rounds, XLA, another input pipeline.
A step's kernels are timed at its batch, and over all the rounds' batches at once (as rounds
stacked in one model may run them), and the faster per round is kept. Each model's kernels are
traced into one function and called once per step, so the bound has one call's overhead a step,
as a real step does; the Keras step of the same model is timed beside it.

    python scripts/benchmark.py --floor 0.2 --rounds 4
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import numpy as np

from keras_models.data.pipeline import SCORING_BATCH
from keras_models.training.config import Config

from .benchmark import keras_throughput
from .profile import conv_kernels


def kernel_layers(model) -> list[tuple[keras.layers.Layer, int]]:
    """The model's Conv2D and Dense layers in order, each with the images it sees per pair: 2 in
    the classifier that the weight-sharing models apply to both digits, 1 elsewhere."""
    weighted = (keras.layers.Conv2D, keras.layers.Dense)
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out += [(inner, 2) for inner in layer.layers if isinstance(inner, weighted)]
        elif isinstance(layer, weighted):
            out.append((layer, 1))
    return out


def dense_kernels(x, w, dy) -> dict:
    """The three matmuls of one Dense layer's training step."""
    import tensorflow as tf

    return {
        "forward": lambda: tf.matmul(x, w),
        "backprop_input": lambda: tf.matmul(dy, w, transpose_b=True),
        "backprop_filter": lambda: tf.matmul(x, dy, transpose_a=True),
    }


def step_kernels(model, pairs: int, training: bool):
    """One traced function running every kernel of a step over `pairs` pairs: all three per
    layer when `training`, the forward ones only (the test curve's) otherwise."""
    import tensorflow as tf

    calls = []
    for i, (layer, per_pair) in enumerate(kernel_layers(model)):
        n, shape = per_pair * pairs, tuple(layer.input.shape[1:])
        x = tf.Variable(tf.random.normal((n, *shape)))  # variables: no constant is folded away
        w = tf.Variable(tf.random.normal(tuple(layer.kernel.shape)))
        dy = tf.Variable(tf.random.normal((n, *layer.output.shape[1:])))
        if isinstance(layer, keras.layers.Conv2D):
            kernels = {k: f.python_function for k, f in conv_kernels(x, w, dy, layer.padding).items()}
        else:
            kernels = dense_kernels(x, w, dy)
        if not training:
            calls.append(kernels["forward"])
            continue
        if i == 0:
            del kernels["backprop_input"]  # the first layer's input is data: no gradient is taken
        calls += kernels.values()
    return tf.function(lambda: [c() for c in calls])


def median_ms(fn, reps: int) -> float:
    fn()  # traces
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def study_floor(rounds: int, epochs_scale: float, steps: int, warmup: int, reps: int = 30, log=print) -> dict:
    """Per Table I model at the report recipe: its kernels' ms per training step and per test
    curve, the seconds they make over a round's epochs, and the Keras step beside them (the
    median of `steps` after `warmup`); the total over `rounds` rounds of the six."""
    from keras_models.core.machine import describe, summary
    from keras_models.models.builder import build_model

    from .study import TABLE, experiment_config

    machine = describe()
    log(f"machine: {summary(machine)}")
    rows = {}
    for exp in TABLE:
        cfg = experiment_config(Config(), exp, "report", epochs_scale, Path("."))
        r, model = cfg.recipe, build_model(cfg.spec)
        alone = median_ms(step_kernels(model, r.batch_size, training=True), reps)
        # The same kernels over every round's batch at once, shared weights: the shape that
        # rounds stacked in one model can reach at best. The bound takes the faster of the two.
        stacked = median_ms(step_kernels(model, rounds * r.batch_size, training=True), reps) / rounds
        step = min(alone, stacked)
        test = median_ms(step_kernels(model, SCORING_BATCH, training=False), reps) if r.test_curve else 0.0
        per_epoch = math.ceil(r.pairs / r.batch_size) * step + math.ceil(r.pairs / SCORING_BATCH) * test
        round_steps = r.epochs * math.ceil(r.pairs / r.batch_size)
        keras_step = keras_throughput(cfg, r.batch_size, steps, warmup)["ms_per_step"]
        rows[exp.model] = {
            "epochs": r.epochs,
            "steps_per_round": round_steps,
            "kernels_ms_per_step": round(step, 2),
            "kernels_ms_alone": round(alone, 2),
            "kernels_ms_stacked": round(stacked, 2),
            "kernels_ms_per_test_curve": round(test, 2),
            "kernels_s_per_round": round(r.epochs * per_epoch / 1000, 2),
            "kernels_s_per_round_without_test_curve": round(round_steps * step / 1000, 2),
            "keras_ms_per_step": keras_step,
        }
        log(
            f"  {exp.model:8s} {r.epochs:4d} epochs: kernels of a step of {r.batch_size} pairs {alone:6.2f} ms alone, "
            f"{stacked:6.2f} ms a round stacked (Keras step {keras_step:6.2f} ms); {test:5.2f} ms a test curve; "
            f"{rows[exp.model]['kernels_s_per_round']:5.2f} s a round"
        )
    total = rounds * sum(row["kernels_s_per_round"] for row in rows.values())
    bare = rounds * sum(row["kernels_s_per_round_without_test_curve"] for row in rows.values())
    log(
        f"Table I, report recipe, epochs x {epochs_scale}, {rounds} rounds: its kernels alone take {total:.1f} s, "
        f"{bare:.1f} s without the test curve (--no-test-curve)"
    )
    # What the rest of a step costs now, over the same steps: the work the bound leaves out.
    total_steps = rounds * sum(row["steps_per_round"] for row in rows.values())
    beyond = rounds * sum(
        row["steps_per_round"] * (row["keras_ms_per_step"] - row["kernels_ms_alone"]) for row in rows.values()
    )
    log(f"  its {total_steps} Keras training steps take {beyond / 1000:.1f} s more than their kernels alone")
    result = {"rounds": rounds, "epochs_scale": epochs_scale, "models": rows, "kernels_s": round(total, 1)}
    result["kernels_s_without_test_curve"] = round(bare, 1)
    result.update(steps=total_steps, keras_beyond_kernels_s=round(beyond / 1000, 1))
    return {**result, "machine": machine}
