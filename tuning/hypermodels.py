"""keras-tuner HyperModels, one per family. `build(hp)` only samples values into a `Config`
and calls the plain builders of `keras_models`, so the builders stay testable without the tuner.
Fixed choices (which of the six models, the data's pixel statistics) go to the constructor."""
from __future__ import annotations

import keras_tuner as kt

from keras_models.config import Config, family, is_shared
from keras_models.models import build_model, compile_model


def comparer_widths(units: int) -> tuple[int, ...]:
    """Three layers shaped like the report's (80, 80, 20)."""
    return (units, units, max(4, units // 4))


class PairHyperModel(kt.HyperModel):
    """Shared by both families: comparer size, dropout and learning rate."""

    def __init__(self, base: Config, mean: float, variance: float, sync_bn: bool = False):
        if family(base.model) != self.family:
            raise ValueError(f"{type(self).__name__} tunes the {self.family} family, not {base.model}")
        super().__init__(name=f"{base.model}_hypermodel")
        self.base, self.mean, self.variance, self.sync_bn = base, mean, variance, sync_bn

    family = ""

    def architecture(self, hp: kt.HyperParameters) -> dict:
        raise NotImplementedError

    def sample(self, hp: kt.HyperParameters) -> Config:
        changes = self.architecture(hp)
        if is_shared(self.base.model):
            changes["comparer"] = comparer_widths(hp.Int("comparer_units", 16, 128, step=16, default=80))
        changes["dropout"] = hp.Float("dropout", 0.0, 0.6, step=0.1, default=0.5)
        changes["lr"] = hp.Float("lr", 1e-4, 1e-2, sampling="log", default=1e-3)
        return self.base.replace(**changes)

    def build(self, hp: kt.HyperParameters):
        cfg = self.sample(hp)
        return compile_model(build_model(cfg, self.mean, self.variance, sync_bn=self.sync_bn), cfg,
                             replicated=self.sync_bn)


class MLPHyperModel(PairHyperModel):
    """mlp, cc, cc_aux: depth 1-4 dense layers of one width."""

    family = "mlp"

    def architecture(self, hp):
        depth = hp.Int("depth", 1, 4, default=2)
        units = hp.Int("units", 64, 1024, step=64, default=512)
        return {"hidden": (units,) * depth}


class CNNHyperModel(PairHyperModel):
    """cnn, cnn_cc, cnn_aux: depth 1-4 conv blocks (the first with `filters`, the others with
    twice as many, as the default 32, 64) and a dense head of `units`."""

    family = "cnn"

    def architecture(self, hp):
        depth = hp.Int("depth", 1, 4, default=2)
        filters = hp.Choice("filters", [16, 32, 48, 64], default=32)
        units = hp.Int("units", 64, 512, step=64, default=256)
        return {"filters": (filters,) + (2 * filters,) * (depth - 1), "hidden": (units,)}


def hypermodel_for(base: Config, mean: float, variance: float, sync_bn: bool = False) -> PairHyperModel:
    cls = CNNHyperModel if family(base.model) == "cnn" else MLPHyperModel
    return cls(base, mean, variance, sync_bn)
