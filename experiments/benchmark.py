"""Speed of training and serving, measured: time per training step, pairs per second, achieved
GFLOP/s, time per epoch of the 1000-pair protocol, seconds to a test accuracy, SavedModel
inference throughput and latency, and peak memory of a training process. The PyTorch peer
(`../shared/bench/torch_reference.py`) runs in the same invocation for a ratio, since these
machines are shared and noisy: only the ratio is comparable across runs."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from keras_models.models.builder import build_model, targets_for
from keras_models.models.cost import flops_per_pair
from keras_models.training.compile import compile_for
from keras_models.training.config import Config

from .peer import last_error_line

# --------------------------------------------------------------------------- training speed


class StepTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def synthetic_pairs(n: int, seed: int = 0):
    from keras_models.data.images import Pairs, comparison_target

    """Random pixels in 0-255 inside a black border, as MNIST's digits have one: a server checks
    each pair like an image and refuses one on a light background."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 10, (n, 2))
    x = np.zeros((n, 2, 14, 14), np.float32)
    x[:, :, 1:-1, 1:-1] = rng.random((n, 2, 12, 12)) * 255
    return Pairs(x, comparison_target(classes), classes)


def train_step_ms(model, batch: int, steps: int, warmup: int) -> float:
    """Median milliseconds per training step (one step per tf.function call) on one batch."""
    import tensorflow as tf

    pairs = synthetic_pairs(batch)
    ds = tf.data.Dataset.from_tensors((pairs.x, targets_for(model, pairs))).cache().repeat(warmup + steps)
    timer = StepTimer()
    model.fit(ds, epochs=1, verbose=0, callbacks=[timer], shuffle=False)
    return 1000 * float(np.median(np.diff(timer.times[warmup:])))


def keras_throughput(cfg: Config, batch: int, steps: int, warmup: int) -> dict:
    """Training steps of a fresh model of `cfg` (at its precision: `mixed_bfloat16` computes
    the classifier in bfloat16, AMX's matmuls on CPUs that have it, and keeps float32 weights)."""
    model = compile_for(build_model(cfg.spec, 33.0, 80.0**2), cfg.replace(steps_per_execution=1))
    ms = train_step_ms(model, batch, steps, warmup)
    pairs_s = 1000 * batch / ms
    return {
        "framework": f"keras {keras.__version__} / {keras.backend.backend()}",
        "model": cfg.spec.model,
        "batch": batch,
        "precision": cfg.spec.precision,
        "steps": steps,
        "ms_per_step": round(ms, 2),
        "pairs_per_s": round(pairs_s, 1),
        "gflops_per_s": round(pairs_s * 3 * flops_per_pair(model) / 1e9, 1),
        "params": int(model.count_params()),
        "mflops_per_pair_forward": round(flops_per_pair(model) / 1e6, 2),
    }


def compare_precision(cfg: Config, reps: int, batch: int, steps: int, warmup: int, log=print) -> dict:
    """float32 and mixed_bfloat16 training steps, A/B in turns (the same machine load for both)."""
    ms = {"float32": [], "mixed_bfloat16": []}
    for rep in range(reps):
        for policy in ms:
            ms[policy].append(keras_throughput(cfg.replace(precision=policy), batch, steps, warmup)["ms_per_step"])
        log(
            f"rep {rep + 1}/{reps}: float32 {ms['float32'][-1]:.1f} ms/step, "
            f"mixed_bfloat16 {ms['mixed_bfloat16'][-1]:.1f} ms/step"
        )
    ratios = [round(b / f, 3) for f, b in zip(ms["float32"], ms["mixed_bfloat16"], strict=False)]
    return {
        "float32_ms": ms["float32"],
        "mixed_bfloat16_ms": ms["mixed_bfloat16"],
        "ratios": ratios,
        "ratio_median": float(np.median(ratios)),
    }


def traced_matmul(a, b):
    """A traced a @ b that returns one number, with a and b captured as before (not inputs)."""
    import tensorflow as tf

    return tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1, :1], tf.float32)))


def matmul_gflops(n: int = 2048, reps: int = 10) -> dict:
    """The CPU's matmul peak as TensorFlow reaches it: an n x n x n `tf.matmul` in float32 and
    in bfloat16 (which CPUs with AMX or AVX-512 BF16 compute in hardware), median of `reps`."""
    import tensorflow as tf

    result = {"n": n}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.cast(tf.random.normal((n, n)), dtype)
        b = tf.cast(tf.random.normal((n, n)), dtype)
        fn = traced_matmul(a, b)
        fn()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn().numpy()
            times.append(time.perf_counter() - t)
        result[f"{dtype.name}_gflops_per_s"] = round(2 * n**3 / float(np.median(times)) / 1e9, 1)
    return result


def study_arithmetic(recipe: str = "report", pairs: int = 1000) -> dict:
    """The arithmetic of one round of Table I, in TFLOP per model: forward FLOPs per pair
    (`flops_per_pair`) x (3 x the training pairs, a forward and a backward pass, + the test pairs
    that the curve scores) x the recipe's epochs; `training_tflop`, the same without the test
    curve, which a recipe may leave out (`--no-test-curve`). A lower bound: the final evaluations
    and the elementwise work of batch norm, dropout and the optimizer are left out."""
    from .study import TABLE, experiment_config

    rows = {}
    for exp in TABLE:
        cfg = experiment_config(Config(pairs=pairs), exp, recipe, 1.0, Path("."))
        rows[exp.model] = flops_per_pair(build_model(cfg.spec)) * pairs * cfg.recipe.epochs / 1e12
    return {
        "recipe": recipe,
        "pairs": pairs,
        "tflop_per_round": {k: round(4 * v, 3) for k, v in rows.items()},
        "total_tflop": round(4 * sum(rows.values()), 2),
        "training_tflop": round(3 * sum(rows.values()), 2),
    }


def torch_throughput(reference: Path, batch: int, steps: int, warmup: int) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            str(reference),
            "--mode",
            "throughput",
            "--steps",
            str(steps),
            "--warmup",
            str(warmup),
            "--batch",
            str(batch),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the PyTorch peer failed ({last_error_line(proc)}); it needs `pip install torch==2.13.0`")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def epoch_seconds(cfg: Config, epochs: int = 4) -> float:
    """Seconds per epoch of the real protocol (1000 pairs, the default pipeline), test curve included."""
    from keras_models.data.images import draw_round, load_data
    from keras_models.data.pipeline import as_dataset
    from keras_models.training.callbacks import EpochRecorder

    train, test = draw_round(*load_data(cfg.recipe.data, cfg.recipe.test_data), cfg.recipe.pairs, cfg.recipe.seed)
    model = compile_for(build_model(cfg.spec, float(train.x.mean()), float(train.x.var())), cfg)
    with tempfile.TemporaryDirectory() as tmp:
        recorder = EpochRecorder(Path(tmp) / "h.csv", as_dataset(test, targets_for(model, test), 1000))
        ds = as_dataset(train, targets_for(model, train), cfg.recipe.batch_size, 0)
        model.fit(ds, epochs=1, verbose=0, callbacks=[recorder], shuffle=False)  # tracing
        start = time.perf_counter()
        model.fit(ds, epochs=epochs, verbose=0, callbacks=[recorder], shuffle=False)
    return (time.perf_counter() - start) / epochs


def seconds_to_accuracy(cfg: Config, target: float, max_epochs: int) -> dict:
    """The fast recipe from scratch until the test pairs reach `target` (the clock includes
    tracing and the per-epoch test evaluation, as the peer's does)."""
    from keras_models.data.images import draw_round, load_data
    from keras_models.data.pipeline import as_dataset

    train, test = draw_round(*load_data(cfg.recipe.data, cfg.recipe.test_data), cfg.recipe.pairs, cfg.recipe.seed)
    keras.utils.set_random_seed(cfg.recipe.seed)
    start = time.perf_counter()
    model = compile_for(build_model(cfg.spec, float(train.x.mean()), float(train.x.var())), cfg)
    ds, test_ds = (
        as_dataset(train, targets_for(model, train), cfg.recipe.batch_size, 0),
        as_dataset(test, targets_for(model, test), 1000),
    )
    history = []
    for epoch in range(max_epochs):
        model.fit(ds, epochs=1, verbose=0, shuffle=False)
        acc = model.evaluate(test_ds, verbose=0, return_dict=True)["compare_accuracy"]
        history.append(round(float(acc), 4))
        if acc >= target:
            return {
                "seconds_to_target": round(time.perf_counter() - start, 2),
                "epochs": epoch + 1,
                "target": target,
                "history": history,
            }
    return {"seconds_to_target": None, "epochs": max_epochs, "target": target, "history": history}


def compare_with_torch(cfg: Config, reference: Path, reps: int, batch: int, steps: int, warmup: int, log=print) -> dict:
    """Keras and the peer alternate, A/B, so that both see the same machine load."""
    ratios, keras_ms, torch_ms = [], [], []
    for rep in range(reps):
        k = keras_throughput(cfg, batch, steps, warmup)
        t = torch_throughput(reference, batch, steps, warmup)
        keras_ms.append(k["ms_per_step"])
        torch_ms.append(t["ms_per_step"])
        ratios.append(round(k["ms_per_step"] / t["ms_per_step"], 3))
        log(
            f"rep {rep + 1}/{reps}: keras {k['ms_per_step']:.1f} ms/step, torch {t['ms_per_step']:.1f} ms/step, "
            f"ratio {ratios[-1]:.3f}"
        )
    return {
        "ratios": ratios,
        "ratio_median": float(np.median(ratios)),
        "keras_ms": keras_ms,
        "torch_ms": torch_ms,
        "torch": t["framework"],
        "torch_threads": t["threads"],
    }
