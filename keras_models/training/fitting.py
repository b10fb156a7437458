"""One fit of one model: its seeded weights, the data pipeline, batching, shuffling and the
callbacks every fit shares. `fit` is the one call of Keras' `Model.fit` in the project: a round
of train.py (keras_models.training.run), a stack of rounds (training.stacked), a keras-tuner
trial (tuning.hypermodels, through `fit_model`) and a lever's own fits (a classifier pre-trained
before the round, experiments/levers.py) each hand it their model, data and callbacks."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import keras

from keras_models.data.images import Pairs
from keras_models.data.pipeline import SCORING_BATCH, as_dataset, pixel_stats
from keras_models.models.builder import BuildHooks, build_model, targets_for
from keras_models.training.callbacks import EpochLog, EpochRecorder, IntervalBackupAndRestore, Stopwatch
from keras_models.training.compile import compile_for
from keras_models.training.config import Config
from keras_models.training.levers import chained
from keras_models.training.results import scoring_batch


@dataclass
class FitResult:
    """What one fit did. `seconds` and `epochs_run`: this invocation's part; the totals include
    the parts before a resume."""

    status: str  # "ok" or "failed"
    seconds: float
    epochs_run: int
    seconds_total: float
    epochs_total: int
    message: str | None = None
    # The compare accuracy of the last epoch's batches as they trained (dropout on, batch
    # statistics): what the report's Table I calls train accuracy.
    running_train_accuracy: float | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> FitResult:
        return cls(**{f.name: d.get(f.name) for f in fields(FitResult)})

    def check_losses(self, losses: list[float], what: str) -> None:
        """Failed, with the epoch, when a loss became NaN or infinite (TerminateOnNaN stopped `what`)."""
        if any(not math.isfinite(v) for v in losses):
            self.status, self.message = "failed", f"loss became NaN/inf at epoch {len(losses)}; {what} stopped"


def fit(
    model: keras.Model, data, targets=None, *, epochs: int, callbacks=(), validation=None, initial_epoch=0, **options
):
    """Keras' `model.fit` as every fit of the project calls it: silent (its callbacks print, if
    anything), stopped by a NaN loss, and shuffled by the data itself (a tf.data pipeline
    reshuffles every epoch from its seed) unless `options` say otherwise. `targets`: with arrays
    for `data`. Returns the History."""
    return model.fit(
        data,
        targets,
        epochs=epochs,
        initial_epoch=initial_epoch,
        validation_data=validation,
        callbacks=[keras.callbacks.TerminateOnNaN(), *callbacks],
        **{"verbose": 0, "shuffle": False, **options},
    )


def new_model(cfg: Config, train: Pairs, strategy, levers=()) -> keras.Model:
    """A compiled model of `cfg` with the pixel statistics of `train` and the layers, loss
    weights and optimizer of `levers` (weights drawn from the global seed: set it first)."""
    replicated = strategy.num_replicas_in_sync > 1 or cfg.run.strategy == "multiworker"
    hooks = BuildHooks(*(chained(levers, hook) for hook in ("digits", "logits", "compare_logit")))
    with strategy.scope():
        model = build_model(cfg.spec, *pixel_stats(train), sync_bn=replicated, hooks=hooks)
        steps = math.ceil(len(train) / cfg.recipe.batch_size)
        compile_for(model, cfg, steps, replicated=replicated, levers=levers)
    return model


def fit_model(
    model: keras.Model,
    recipe,
    epochs: int,
    train: Pairs,
    val: Pairs | None,
    seed: int,
    callbacks=(),
    val_batch: int = SCORING_BATCH,
    initial_epoch: int = 0,
    levers=(),
):
    """`fit` on `train` in batches of `recipe.batch_size`, reshuffled every epoch from `seed`
    (or in the pipeline of a lever's `dataset`), with `val` as validation data, scored
    `val_batch` pairs at a time (results.scoring_batch). Returns the History."""
    validation = None if val is None else as_dataset(val, targets_for(model, val), val_batch)
    targets = targets_for(model, train)
    found = (lever.dataset(train, targets, recipe.batch_size, seed) for lever in levers)
    data = next((d for d in found if d is not None), None)
    if data is None:
        data = as_dataset(train, targets, recipe.batch_size, shuffle_seed=seed)
    return fit(model, data, epochs=epochs, callbacks=callbacks, validation=validation, initial_epoch=initial_epoch)


@dataclass(frozen=True)
class Fit:
    """One model to fit in a round: its settings and seed, and where its history, timing and
    backups go. `test`: scored after every epoch with `cfg.recipe.test_curve`; `fits_after`: how many
    fits of the run follow it, for the console's estimate."""

    cfg: Config
    seed: int
    history_dir: Path
    backup_dir: Path
    test: Pairs
    fits_after: int = 0


def reusable(cfg: Config, strategy, levers=()) -> bool:
    """Whether the fits of a run can share one compiled model: one plain model per round
    (rules.not_one_plain_model), without levers, on a strategy of one replica."""
    from keras_models.training.rules import not_one_plain_model

    return not not_one_plain_model(cfg) and not levers and strategy.num_replicas_in_sync == 1


def set_determinism(jit_compile: bool) -> None:
    """TensorFlow's op determinism on (the same seed gives the same weights), except for a run
    compiled with XLA: Keras drops XLA silently under it (keras.src.trainers.trainer.
    model_supports_jit), and TensorFlow has no deterministic XLA form of MaxPool's gradient
    ("GPU MaxPool gradient ops do not yet have a deterministic XLA implementation", raised on
    the CPU too). XLA's CPU programs repeat their results all the same (tests/test_compile.py).
    Set per run, since it is the process's: a study's runs may differ in it."""
    from tensorflow.python.framework import config  # disable_op_determinism is not public

    if jit_compile:
        config.disable_op_determinism()
    else:
        config.enable_op_determinism()


def seed_everything(seed: int, keep_kernels: bool = False) -> None:
    """keras.utils.set_random_seed(seed); with `keep_kernels`, without the clearing of
    TensorFlow's kernel cache that tf.random.set_seed does (context._set_global_seed), after
    which a traced step instantiates its kernels again at its next call: 0.3 s a round, four
    epochs of the sprint's classifier on 2 cores. The cache holds the seeds of stateful random
    ops, which no model here uses: Keras' random layers draw from their generators' variables,
    and tf.data's shuffles take the global seed when they are built, which is set all the same."""
    from tensorflow.python.eager import context

    ctx = context.context()
    if not keep_kernels or not hasattr(ctx, "_context_handle"):
        keras.utils.set_random_seed(seed)
        return
    handle, ctx._context_handle = ctx._context_handle, None  # _set_global_seed clears only with a handle
    try:
        keras.utils.set_random_seed(seed)
    finally:
        ctx._context_handle = handle


def restart(traced: keras.Model, fresh: keras.Model) -> keras.Model:
    """`traced`, a compiled model that has trained, holding the state of `fresh`, an untrained
    one of the same configuration: its weights, pixel statistics, random generators' states and
    optimizer state. Training it then computes what training `fresh` computes, on the step
    `traced` has already traced (about 1.8 s of a small model's first epoch on 2 CPU cores)."""
    fresh.optimizer.build(fresh.trainable_variables)
    pairs = [(traced.variables, fresh.variables), (traced.optimizer.variables, fresh.optimizer.variables)]
    for old, new in pairs:
        if [(v.shape, v.dtype) for v in old] != [(v.shape, v.dtype) for v in new]:
            raise ValueError("restart needs two models of the same configuration")
        for a, b in zip(old, new, strict=True):
            a.assign(b)
    return traced


def fit_member(
    fit: Fit, data, strategy, levers=(), lever_fit=None, traced: keras.Model | None = None
) -> tuple[keras.Model, FitResult]:
    """A fresh model, its weights, augmentation and batch order drawn from `fit.seed`, fitted on
    the round's pairs (`data`, rounds.RoundData) with the `levers` of the run (their hooks see
    `lever_fit`, a levers.LeverFit), resumable from its backup. `traced`: a model of the same
    configuration, fitted before in this process (`reusable`), which takes the fresh model's
    state and trains in its place."""
    cfg = fit.cfg
    seed_everything(fit.seed, keep_kernels=traced is not None)
    model = new_model(cfg, data.train, strategy, levers)
    if traced is not None:
        model = restart(traced, model)
    recorder = EpochRecorder(
        fit.history_dir / "history.csv",
        as_dataset(fit.test, targets_for(model, fit.test), scoring_batch(cfg)) if cfg.recipe.test_curve else None,
    )
    stopwatch = Stopwatch(fit.history_dir / "timing.json", cfg.run.backup_interval)
    # The levers' callbacks come first: a resumed fit then restores its backup over what they
    # did before its first step (a pre-trained classifier, say).
    callbacks = [callback for lever in levers for callback in lever.callbacks(lever_fit)]
    callbacks += [recorder, stopwatch, IntervalBackupAndRestore(str(fit.backup_dir), cfg.run.backup_interval)]
    if cfg.run.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(fit.history_dir / "tensorboard")))
    if cfg.recipe.early_stopping:  # chosen on validation pairs only; the test curve is never read
        callbacks.append(
            keras.callbacks.EarlyStopping(
                "val_compare_accuracy", patience=cfg.recipe.early_stopping, mode="max", restore_best_weights=True
            )
        )
    if not cfg.run.quiet:
        callbacks.append(EpochLog(fit.fits_after))
    start = time.perf_counter()
    history = fit_model(
        model, cfg.recipe, cfg.num_epochs, data.train, data.val, fit.seed, callbacks, scoring_batch(cfg), levers=levers
    )
    losses = history.history.get("loss", [])
    seconds = time.perf_counter() - start
    running = recorder.rows[-1].get("compare_accuracy") if recorder.rows else None
    result = FitResult(
        "ok", round(seconds, 2), len(losses), round(stopwatch.earlier + seconds, 2), len(recorder.rows), None, running
    )
    result.check_losses(losses, "round")
    for lever in levers:
        model = lever.kept(model, lever_fit)
    return model, result
