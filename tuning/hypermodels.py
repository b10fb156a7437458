"""keras-tuner HyperModels, one per family. `build(hp)` only samples values into a `Config` and
calls the plain builders of `keras_models`; `fit(hp, model, ...)` trains through
`keras_models.training.fitting.fit_model`, the fit of train.py's rounds: the same tf.data pipeline,
batching, shuffling from the round's seed, and callbacks. What stays fixed for a search (the
base settings, the rounds' pairs, the cost limit) goes to the constructor.
"""

from __future__ import annotations

import math

import keras_tuner as kt
import numpy as np

from keras_models.data.pipeline import pixel_stats
from keras_models.models.builder import build_model
from keras_models.training.callbacks import EpochLog
from keras_models.training.compile import compile_for
from keras_models.training.config import Config, config_mflops
from keras_models.training.fitting import fit_model
from keras_models.training.results import evaluate_pairs, scoring_batch
from keras_models.training.rounds import RoundData

DEV_OBJECTIVE = "dev_compare_accuracy"


def comparer_widths(units: int) -> tuple[int, ...]:
    """Three layers shaped like the report's (80, 80, 20)."""
    return (units, units, max(4, units // 4))


class PairHyperModel(kt.HyperModel):
    """Shared by both families: comparer size, dropout and learning rate. `rounds`: the pairs a
    trial trains on; with dev pairs (`base.recipe.dev_pairs`) it trains once per round and scores the
    mean dev accuracy, else it trains on the first round and keras-tuner reads its validation
    accuracy. `max_mflop`: a trial whose model costs more per pair fails before it trains."""

    family = ""
    width = ""  # the hyperparameter that sets the network's width, for the trials' table

    def __init__(self, base: Config, rounds: list[RoundData], sync_bn: bool = False, max_mflop: float | None = None):
        if base.arch.family != self.family:
            raise ValueError(f"{type(self).__name__} tunes the {self.family} family, not {base.spec.model}")
        super().__init__(name=f"{base.spec.model}_hypermodel")
        self.base, self.rounds, self.sync_bn, self.max_mflop = base, rounds, sync_bn, max_mflop

    def architecture(self, hp: kt.HyperParameters) -> dict:
        raise NotImplementedError

    def sample(self, hp: kt.HyperParameters) -> Config:
        changes = self.architecture(hp)
        if self.base.arch.shared:
            changes["comparer"] = comparer_widths(hp.Int("comparer_units", 16, 128, step=16, default=80))
        changes["dropout"] = hp.Float("dropout", 0.0, 0.6, step=0.1, default=0.5)
        changes["lr"] = hp.Float("lr", 1e-4, 1e-2, sampling="log", default=1e-3)
        return self.base.replace(**changes)

    def build(self, hp: kt.HyperParameters):
        return self.model_for(self.sample(hp), self.rounds[0])

    def model_for(self, cfg: Config, data: RoundData):
        """The model of `cfg` with the pixel statistics of `data`'s training pairs, as train.py builds it."""
        model = build_model(cfg.spec, *pixel_stats(data.train), sync_bn=self.sync_bn)
        # A schedule spans the fit's steps, as in train.py.
        steps = math.ceil(len(data.train) / cfg.recipe.batch_size)
        return compile_for(model, cfg, steps_per_epoch=steps, replicated=self.sync_bn)

    def fit(self, hp, model, *args, callbacks=(), **kwargs):
        cfg = self.sample(hp)
        if self.max_mflop is not None and (cost := config_mflops(cfg)) > self.max_mflop:
            raise kt.errors.FailedTrialError(
                f"{cost:.1f} MFLOP per pair, over the limit of {self.max_mflop:g}; not trained"
            )
        if "epochs" in kwargs:  # Hyperband sets each bracket's epochs
            cfg = cfg.replace(epochs=kwargs["epochs"])
        shown = [] if cfg.run.quiet else [EpochLog(0)]
        if not self.base.recipe.dev_pairs:
            data = self.rounds[0]
            return fit_model(
                model,
                cfg.recipe,
                cfg.num_epochs,
                data.train,
                data.val,
                data.seed,
                [*callbacks, *shown],
                scoring_batch(cfg),
                initial_epoch=kwargs.get("initial_epoch", 0),
            )
        scores = []
        for i, data in enumerate(self.rounds):
            # keras-tuner built the first round's model; each later round bakes in its own statistics.
            model = model if i == 0 else self.model_for(cfg, data)
            fit_model(model, cfg.recipe, cfg.num_epochs, data.train, None, data.seed, shown)
            scores.append(evaluate_pairs(model, data.dev)["accuracy"])
        return {DEV_OBJECTIVE: float(np.mean(scores))}


class MLPHyperModel(PairHyperModel):
    """Architectures of the MLP family: depth 1-4 dense layers of one width."""

    family = "mlp"
    width = "units"

    def architecture(self, hp):
        depth = hp.Int("depth", 1, 4, default=2)
        units = hp.Int("units", 64, 1024, step=64, default=512)
        return {"hidden": (units,) * depth}


class CNNHyperModel(PairHyperModel):
    """Architectures of the CNN family: depth 1-4 conv blocks (the first with `filters`, the
    others with twice as many, as the default 32, 64) and a dense head of `units`."""

    family = "cnn"
    width = "filters"

    def architecture(self, hp):
        depth = hp.Int("depth", 1, 4, default=2)
        filters = hp.Choice("filters", [16, 32, 48, 64], default=32)
        units = hp.Int("units", 64, 512, step=64, default=256)
        return {"filters": (filters,) + (2 * filters,) * (depth - 1), "hidden": (units,)}


# One hypermodel per body of the registry (Architecture.family), which says what to search.
HYPERMODELS = {"mlp": MLPHyperModel, "cnn": CNNHyperModel}


def hypermodel_for(
    base: Config, rounds: list[RoundData], sync_bn: bool = False, max_mflop: float | None = None
) -> PairHyperModel:
    return HYPERMODELS[base.arch.family](base, rounds, sync_bn, max_mflop)
