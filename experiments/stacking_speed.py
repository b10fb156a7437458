"""Rounds stacked into one Keras model, timed beside rounds trained alone (`benchmark.py
--stacking`): the measurement behind the study's choice to train its rounds one model at a time.

Per epoch of the report recipe (batch 100, Adam, the test pairs scored after the epoch as the
test curve does), in one process, for each architecture:
- alone: the round's own compiled model, as train.py trains it;
- copies: R rounds as one model, a per-round copy of every weight (R plain models side by side,
  one step and one test evaluation for all of them);
- einsum (the MLP only): the MLP's dense layers as (R, in, out) kernels applied with one einsum,
  batch norm per round over a reshape, so that R rounds are one batched matmul per layer.
Each form is timed with and without XLA; a round alone also without the test curve, and with
numpy arrays handed to fit instead of the data pipeline. Rounds of each form train on real pairs,
their own.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import keras
import numpy as np

from keras_models.core.machine import describe
from keras_models.data.images import Pairs
from keras_models.data.pipeline import as_dataset, pixel_stats
from keras_models.models.builder import build_model, loss_weights, targets_for
from keras_models.training.compile import optimizer
from keras_models.training.config import Config
from keras_models.training.recipes import recipe_changes
from keras_models.training.rounds import RoundData
from keras_models.training.stacked import TakeRound

MODELS = ("mlp", "cc", "cc_aux", "cnn", "cnn_cc", "cnn_aux")
STACKED = 4  # rounds per stacked model: the issue's `reproduce.py --rounds 4`
EPOCHS = 10  # timed epochs per form, after two that trace and warm up
REPS = 3  # timings of each form, taken in turn with the others


class StackedDense(keras.layers.Layer):
    """R dense layers in one: inputs (N, R, in), a kernel (R, in, out), outputs (N, R, out)."""

    def __init__(self, rounds: int, units: int, **kwargs):
        super().__init__(**kwargs)
        self.rounds, self.units = rounds, units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(self.rounds, input_shape[-1], self.units), initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(self.rounds, self.units), initializer="zeros")

    def call(self, x):
        return keras.ops.einsum("nri,rio->nro", x, self.kernel) + self.bias

    def get_config(self):
        return {**super().get_config(), "rounds": self.rounds, "units": self.units}


def einsum_mlp(cfg: Config, rounds: int) -> keras.Model:
    """The MLP of `cfg` for `rounds` rounds at once, on flattened pairs (N, R, 392)."""
    pairs = keras.Input((rounds, 392), name="pairs")
    x = pairs
    for i, units in enumerate(cfg.spec.hidden_units, 1):
        x = StackedDense(rounds, units, name=f"dense{i}")(x)
        x = keras.layers.Reshape((rounds * units,))(x)  # batch norm's statistics per round and unit
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.Reshape((rounds, units))(x)
        x = keras.layers.Dropout(cfg.spec.dropout, name=f"dropout{i}")(keras.layers.ReLU()(x))
    compare = keras.layers.Activation("sigmoid", name="compare")(StackedDense(rounds, 1, name="logit")(x))
    return keras.Model(pairs, {"compare": compare}, name="stacked_mlp")


def copies(cfg: Config, data: list[RoundData]) -> keras.Model:
    """len(data) plain models of `cfg` side by side, each with its round's pixel statistics."""
    pairs = keras.Input((len(data), 2, 14, 14), name="pairs")
    outputs = {}
    for r, d in enumerate(data):
        one = build_model(cfg.spec, *pixel_stats(d.train))
        one.name = f"round{r}"  # names are unique within a model
        taken = keras.layers.Reshape((2, 14, 14), name=f"take{r}")(TakeRound(r, name=f"round{r}_pairs")(pairs))
        for name, tensor in one(taken).items():
            outputs[f"{name}_{r}"] = keras.layers.Identity(name=f"{name}_{r}")(tensor)
    return keras.Model(pairs, outputs, name="stacked")


def stacked_data(model: keras.Model, parts: list[Pairs], flat: bool):
    """The rounds' pairs side by side (round r's i-th pair beside round s's i-th) and their
    targets, keyed by the model's outputs."""
    x = np.stack([p.x for p in parts], axis=1)
    if flat:  # the einsum MLP: one compare output of shape (N, R, 1)
        return x.reshape(len(x), len(parts), -1), {"compare": np.stack([p.target for p in parts], axis=1)[..., None]}
    names = {name.rsplit("_", 1)[0] for name in model.output}
    return x, {f"{name}_{r}": target for r, p in enumerate(parts) for name, target in p.targets(names).items()}


@dataclass(frozen=True)
class Stacked:
    """Stacked pairs, as the data pipeline takes pairs: x and a length."""

    x: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


class EpochClock(keras.callbacks.Callback):
    """Scores the test pairs after every epoch, as the test curve does, and times each epoch
    after the first two (tracing, warm-up), test score included."""

    def __init__(self, test):
        super().__init__()
        self.test, self.seconds, self.start = test, [], None

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.test is not None:
            self.model.evaluate(self.test, verbose=0)
        if epoch >= 2:
            self.seconds.append(time.perf_counter() - self.start)


def timed(model: keras.Model, cfg: Config, x, y, tx, ty, jit: bool, curve: bool = True, pipeline: bool = True) -> float:
    """Seconds of the median epoch of one fit over the data pipeline train.py uses (`pipeline`; else numpy
    arrays handed to fit, which shuffles them), the test pairs scored after every epoch
    (`curve`), after two epochs that trace and warm up. The losses and their weights are the
    spec's, keyed by output name (`compare_3`: round 3's)."""
    weights = loss_weights(cfg.spec)
    losses, lw, metrics = {}, {}, {}
    for name in model.output:
        base = name.rsplit("_", 1)[0] if name[-1].isdigit() else name
        digit = base.startswith("digit")
        losses[name] = keras.losses.SparseCategoricalCrossentropy() if digit else keras.losses.BinaryCrossentropy()
        lw[name] = weights.get(base, 1.0)
        metrics[name] = ["sparse_categorical_accuracy" if digit else "binary_accuracy"]
    recipe = cfg.recipe
    model.compile(
        optimizer=optimizer(recipe, EPOCHS + 2, len(x) // recipe.batch_size),
        loss=losses,
        loss_weights=lw,
        metrics=metrics,
        jit_compile=jit,
        steps_per_execution=cfg.run.steps_per_execution,
    )
    clock = EpochClock(as_dataset(Stacked(tx), ty, 1000) if curve else None)
    if pipeline:
        train = as_dataset(Stacked(x), y, recipe.batch_size, shuffle_seed=0)
        model.fit(train, epochs=EPOCHS + 2, callbacks=[clock], verbose=0, shuffle=False)  # the dataset shuffles
    else:
        model.fit(x, y, batch_size=recipe.batch_size, epochs=EPOCHS + 2, callbacks=[clock], verbose=0)
    # The median epoch: a 2-core virtual machine's neighbours stretch a few epochs by half or more.
    return statistics.median(clock.seconds)


def alone(cfg: Config, train: Pairs, test: Pairs, **how) -> float:
    """`timed` for one round's own model."""
    model = build_model(cfg.spec, *pixel_stats(train))
    return timed(model, cfg, train.x, targets_for(model, train), test.x, targets_for(model, test), **how)


FORMS = ("alone", "alone, no test curve", "alone, numpy into fit", "alone, after XLA", "copies", "einsum")


def measure(images=None, models=MODELS, reps: int = REPS, log=print) -> dict:
    """{model: {form: {"plain" | "xla": seconds per round-epoch}}} and the machine; `images`:
    (train, test), by default the embedded set's. Each form is timed `reps` times, the forms of
    a model in turn, and keeps its median. The levers other than stacking and XLA are timed
    without XLA. Every form without XLA is timed before any XLA program has run in the process,
    so that none of them runs beside XLA's runtime; the row "alone, after XLA" (a round alone
    without XLA, timed again after the XLA forms) shows what that changes, within the noise of
    timing one round twice."""
    from keras_models.data.images import load_data

    images, times = images or load_data("embedded", None), {name: {} for name in models}
    for jit in (False, True):
        key = "xla" if jit else "plain"
        for name in models:
            cfg = Config(model=name, **recipe_changes("report", name))
            data = [RoundData.draw(cfg, images, r) for r in range(STACKED)]
            train, test, t = data[0].train, data[0].test, times[name]
            keras.utils.set_random_seed(0)
            for _ in range(reps):
                t.setdefault(("alone", key), []).append(alone(cfg, train, test, jit=jit))
                stacked = copies(cfg, data)
                x, y = stacked_data(stacked, [d.train for d in data], False)
                tx, ty = stacked_data(stacked, [d.test for d in data], False)
                t.setdefault(("copies", key), []).append(timed(stacked, cfg, x, y, tx, ty, jit) / STACKED)
                if name == "mlp":
                    flat = einsum_mlp(cfg, STACKED)
                    x, y = stacked_data(flat, [d.train for d in data], True)
                    tx, ty = stacked_data(flat, [d.test for d in data], True)
                    t.setdefault(("einsum", key), []).append(timed(flat, cfg, x, y, tx, ty, jit) / STACKED)
                if jit:
                    t.setdefault(("alone, after XLA", "plain"), []).append(alone(cfg, train, test, jit=False))
                    continue
                t.setdefault(("alone, no test curve", key), []).append(alone(cfg, train, test, jit=False, curve=False))
                t.setdefault(("alone, numpy into fit", key), []).append(
                    alone(cfg, train, test, jit=False, pipeline=False)
                )
    rows = {}
    for name in models:
        row = rows[name] = {}
        for form in FORMS:
            for key in ("plain", "xla"):
                if (form, key) in times[name]:
                    row.setdefault(form, {})[key] = statistics.median(times[name][form, key])
        cells = [f"{form} {' / '.join(f'{v * 1000:.1f}' for v in row[form].values())}" for form in row]
        log(f"{name}: ms per round-epoch (without / with XLA): " + "; ".join(cells))
    return {"stacked_rounds": STACKED, "epochs_timed": EPOCHS, "reps": reps, "rows": rows, "machine": describe()}
