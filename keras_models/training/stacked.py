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
from keras_models.training.callbacks import EpochRecorder
from keras_models.training.compile import compile_for
from keras_models.training.config import Config
from keras_models.training.fitting import FitResult, fit, new_model, seed_everything
from keras_models.training.rules import MEMBER_SEED_STRIDE


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


def fit_stacked(cfg: Config, fits: list, datas: list, strategy) -> list[tuple[keras.Model, FitResult]]:
    """The rounds of `datas` (RoundData, one `Fit` each) trained as one model; returns each
    round's own model and its FitResult, its seconds the stack's divided among its rounds."""
    models, train = [], []
    for fit_, data in zip(fits, datas, strict=True):
        seed_everything(fit_.seed)  # as fit_member seeds a lone round: weights, dropout, augmentation
        models.append(new_model(cfg, data.train, strategy))
        # Built under the round's own global seed, as fit_model builds a lone round's: tf.data's
        # shuffle takes the global seed when it is built.
        targets = targets_for(models[-1], data.train)
        train.append(as_dataset(data.train, targets, cfg.recipe.batch_size, shuffle_seed=fit_.seed))
        fit_.history_dir.mkdir(parents=True, exist_ok=True)
    names = list(models[0].output.keys())
    stack = stacked_model(models)
    steps = math.ceil(len(datas[0].train) / cfg.recipe.batch_size)
    compile_for(stack, cfg, steps, outputs={f"{name}_{r}": name for r in range(len(models)) for name in names})
    test = [as_dataset(d.test, targets_for(m, d.test), SCORING_BATCH) for d, m in zip(datas, models, strict=True)]
    test = stacked_dataset(test, names).cache() if cfg.recipe.test_curve else None
    weights = loss_weights(cfg.spec)
    recorder = EpochRecorder(
        [f.history_dir / "history.csv" for f in fits],
        test,
        split=lambda logs: [round_logs(logs, r, names, weights) for r in range(len(models))],
    )
    start = time.perf_counter()
    history = fit(stack, stacked_dataset(train, names), epochs=cfg.num_epochs, callbacks=[recorder])
    share = round((time.perf_counter() - start) / len(models), 2)
    losses = history.history.get("loss", [])
    out = []
    for fit_, model, rows in zip(fits, models, recorder.tables, strict=True):
        model.name = cfg.spec.model
        # Each round's share of the stack's seconds, as a lone round's Stopwatch writes its own.
        atomic_write_json(fit_.history_dir / "timing.json", {"seconds": share, "epochs": len(losses)})
        running = rows[-1].get("compare_accuracy") if rows else None
        result = FitResult("ok", share, len(losses), share, len(losses), None, running)
        result.check_losses(losses, "stack")
        out.append((model, result))
    return out


class StackedRunner:
    """Trains a run's rounds cfg.run.stack at a time, each stack as one model: the counterpart of
    rounds.RoundRunner, with the same `rounds`."""

    def __init__(self, cfg: Config, strategy, work: Path):
        self.cfg, self.strategy, self.work = cfg, strategy, work

    def rounds(self, indices: list[int], images, log=print):
        """Yields (model, RoundResult) of each round of `indices`, its model.keras saved (rounds.save_round)."""
        from keras_models.training.fitting import Fit
        from keras_models.training.rounds import RoundData, RoundResult, save_round, scored

        cfg = self.cfg
        for first in range(0, len(indices), cfg.run.stack):
            group = indices[first : first + cfg.run.stack]
            log(f"{cfg.spec.model}: rounds {', '.join(str(r + 1) for r in group)} as one model")
            start = time.perf_counter()
            datas = [RoundData.draw(cfg, images, r) for r in group]
            seeds = [d.seed + MEMBER_SEED_STRIDE * cfg.recipe.member for d in datas]
            work = self.work
            fits = [
                Fit(cfg, s, work / f"round-{d.index:02d}", work / "backup", d.test)
                for s, d in zip(seeds, datas, strict=True)
            ]
            fitted = fit_stacked(cfg, fits, datas, self.strategy)
            wall = (time.perf_counter() - start) / len(group)  # the stack's wall-clock, in equal shares
            for data, (model, part) in zip(datas, fitted, strict=True):
                result = RoundResult(**part.to_dict(), round=data.index, seed=data.seed)
                if result.ok:
                    result = scored(result, model, data, SCORING_BATCH)  # --stack refuses a softmax over the batch
                    save_round(model, result, work, wall)
                yield model, result
