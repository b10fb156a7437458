"""Rounds trained together (`--stack N`): N rounds of one architecture as one Keras model, a
per-round copy of every weight, one step and one test evaluation for all of them.

Each round's model is the plain model a lone round builds, from the round's seed (so the same
initial weights, dropout generators and pixel statistics), and each round's batches are its own
pairs shuffled from its own seed, as a lone round's. The stacked model feeds round r's pairs to
round r's model and sums the rounds' losses, so each round's gradient, and Adam's update, is its
own. A round's history.csv and timing.json have a lone round's columns; its model is the plain
model itself, saved and exported as any round's. What it shares: one schedule of epochs, and a
NaN loss ends every round of the stack. A stack killed mid-way trains again from its start.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras

from keras_models.core.files import atomic_write_json
from keras_models.data.pipeline import SCORING_BATCH, as_dataset
from keras_models.models.builder import loss_weights, targets_for
from keras_models.models.saving import atomic_save_model
from keras_models.training.callbacks import write_history
from keras_models.training.compile import optimizer, output_objective
from keras_models.training.config import MEMBER_SEED_STRIDE, Config
from keras_models.training.fitting import FitResult, new_model, seed_everything


@keras.saving.register_keras_serializable(package="keras_models")
class TakeRound(keras.layers.Layer):
    """The pairs of round `index` from stacked inputs (N, rounds, 2, 14, 14)."""

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    def call(self, x):
        return x[:, self.index]

    def get_config(self):
        return {**super().get_config(), "index": self.index}


def stacked_model(models: list[keras.Model]) -> keras.Model:
    """One model over the rounds' models: outputs `compare_r`, `digit1_r`, ... for round r."""
    pairs = keras.Input((len(models), *models[0].input_shape[1:]), name="pairs")
    outputs = {}
    for r, model in enumerate(models):
        model.name = f"{model.name}_round{r}"  # unique within the stack; fit_stacked restores it
        for name, tensor in model(TakeRound(r, name=f"round{r}_pairs")(pairs)).items():
            outputs[f"{name}_{r}"] = keras.layers.Identity(name=f"{name}_{r}")(tensor)
    return keras.Model(pairs, outputs, name="stacked")


def compile_stacked(model: keras.Model, cfg: Config, names: list[str], rounds: int, steps_per_epoch: int) -> None:
    """Each round's losses keyed by output name with the spec's weights, as compile_model gives
    a lone round's, and the recipe's optimizer."""
    weights = loss_weights(cfg.spec)
    losses, metrics, lw = {}, {}, {}
    for r in range(rounds):
        for name in names:
            key = f"{name}_{r}"
            losses[key], metric = output_objective(cfg.recipe, name, key)
            metrics[key] = [metric(name="accuracy")]
            lw[key] = weights[name]
    model.compile(
        optimizer=optimizer(cfg.recipe, cfg.num_epochs, steps_per_epoch),
        loss=losses,
        loss_weights=lw,
        metrics=metrics,
        jit_compile=cfg.recipe.jit_compile,
        steps_per_execution=cfg.run.steps_per_execution,
    )


def stacked_dataset(datasets: list, names: list[str]):
    """The rounds' own pipelines side by side: round r's i-th batch beside round s's i-th."""
    import tensorflow as tf

    def join(*batches):
        x = tf.stack([b[0] for b in batches], axis=1)
        return x, {f"{name}_{r}": b[1][name] for r, b in enumerate(batches) for name in names}

    options = tf.data.Options()
    options.autotune.enabled = False  # as data.pipeline's: its autotuner takes a core of two from the step
    return tf.data.Dataset.zip(tuple(datasets)).map(join).prefetch(1).with_options(options)


def round_logs(logs: dict, r: int, names: list[str], weights: dict) -> dict:
    """Round r's part of a stacked model's logs, under a lone round's names."""
    row = {f"{name}_accuracy": float(logs[f"{name}_{r}_accuracy"]) for name in names}
    total = sum(weights[name] * float(logs[f"{name}_{r}_loss"]) for name in names)
    if len(names) > 1:  # Keras names a one-output model's loss `loss` alone
        row.update({f"{name}_loss": float(logs[f"{name}_{r}_loss"]) for name in names})
    row["loss"] = total
    return row


class StackedRecorder(keras.callbacks.Callback):
    """Each round's history.csv after every epoch: its training columns and its test curve, as
    EpochRecorder writes a lone round's."""

    def __init__(self, fits: list, test, names: list[str], weights: dict):
        super().__init__()
        self.fits, self.test, self.names, self.weights = fits, test, names, weights
        self.rows = [[] for _ in fits]

    def on_epoch_end(self, epoch, logs=None):
        test = self.model.evaluate(self.test, verbose=0, return_dict=True) if self.test is not None else None
        for r, fit in enumerate(self.fits):
            row = {"epoch": epoch + 1, **round_logs(logs or {}, r, self.names, self.weights)}
            if test is not None:
                row.update({f"test_{k}": v for k, v in round_logs(test, r, self.names, self.weights).items()})
            self.rows[r].append(row)
            write_history(fit.history_dir / "history.csv", self.rows[r])


def fit_stacked(cfg: Config, fits: list, datas: list, strategy) -> list[tuple[keras.Model, FitResult]]:
    """The rounds of `datas` (RoundData, one `Fit` each) trained as one model; returns each
    round's own model and its FitResult, its seconds the stack's divided among its rounds."""
    models, train = [], []
    for fit, data in zip(fits, datas, strict=True):
        seed_everything(fit.seed)  # as fit_member seeds a lone round: weights, dropout, augmentation
        models.append(new_model(cfg, data.train, strategy))
        # Built under the round's own global seed, as fit_model builds a lone round's: tf.data's
        # shuffle takes the global seed when it is built.
        targets = targets_for(models[-1], data.train)
        train.append(as_dataset(data.train, targets, cfg.recipe.batch_size, shuffle_seed=fit.seed))
        fit.history_dir.mkdir(parents=True, exist_ok=True)
    names = list(models[0].output.keys())
    stack = stacked_model(models)
    steps = math.ceil(len(datas[0].train) / cfg.recipe.batch_size)
    compile_stacked(stack, cfg, names, len(models), steps)
    test = [as_dataset(d.test, targets_for(m, d.test), SCORING_BATCH) for d, m in zip(datas, models, strict=True)]
    test = stacked_dataset(test, names).cache() if cfg.recipe.test_curve else None
    recorder = StackedRecorder(fits, test, names, loss_weights(cfg.spec))
    start = time.perf_counter()
    history = stack.fit(
        stacked_dataset(train, names),
        epochs=cfg.num_epochs,
        callbacks=[keras.callbacks.TerminateOnNaN(), recorder],
        verbose=0,
        shuffle=False,
    )
    share = round((time.perf_counter() - start) / len(models), 2)
    losses = history.history.get("loss", [])
    out = []
    for fit, model, rows in zip(fits, models, recorder.rows, strict=True):
        model.name = cfg.spec.model
        # Each round's share of the stack's seconds, as a lone round's Stopwatch writes its own.
        atomic_write_json(fit.history_dir / "timing.json", {"seconds": share, "epochs": len(losses)})
        running = rows[-1].get("compare_accuracy") if rows else None
        result = FitResult("ok", share, len(losses), share, len(losses), None, running)
        if any(not math.isfinite(v) for v in losses):
            result.status, result.message = "failed", f"loss became NaN/inf at epoch {len(losses)}; stack stopped"
        out.append((model, result))
    return out


def stacked_rounds(cfg: Config, images, group: list[int], work: Path, strategy):
    """Trains the rounds `group` as one stack; yields (model, RoundResult) of each, its
    model.keras saved in its round folder."""
    from keras_models.training.fitting import Fit
    from keras_models.training.rounds import RoundData, RoundResult, scored

    start = time.perf_counter()
    datas = [RoundData.draw(cfg, images, r) for r in group]
    fits = [
        Fit(
            cfg, d.seed + MEMBER_SEED_STRIDE * cfg.recipe.member, work / f"round-{d.index:02d}", work / "backup", d.test
        )
        for d in datas
    ]
    fitted = fit_stacked(cfg, fits, datas, strategy)
    wall = round((time.perf_counter() - start) / len(group), 2)  # the stack's wall-clock, in equal shares
    for data, (model, part) in zip(datas, fitted, strict=True):
        result = RoundResult(
            data.index, data.seed, part.status, part.seconds, part.epochs_run, part.seconds_total, part.epochs_total
        )
        result.message, result.wall_seconds = part.message, wall
        result.running_train_accuracy = part.running_train_accuracy
        if part.status == "ok":
            result = scored(result, model, data, SCORING_BATCH)  # --stack refuses a softmax over the batch
            atomic_save_model(model, work / f"round-{data.index:02d}" / "model.keras")
        yield model, result
