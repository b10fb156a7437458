"""The study's levers: what the ablations (experiments/ablation_rows.py) and the small-model
ablation (experiments/frontier_rows.py) add to training beyond its settings. No recipe uses one.
Each is a `keras_models.training.levers.Lever`, made of Keras' own means, that `km.train(cfg,
levers=[...])` (or a row of an ablation) hands to training:

    WeightDecay(decay)          AdamW in place of Adam: an optimizer hook
    MovingAverage(momentum)     a moving average of the weights, evaluated and exported: an optimizer hook
    Repair()                    each batch's digits re-paired at random: a tf.data pipeline
    Elastic()                   elastic distortions of each training digit: a layer
    LearnedLossWeights()        learned loss weights (Kendall et al. 2018): layers and loss weights
    Pretrain(epochs)            the classifier first fitted on the digits outside the pairs: a callback
    Distill(teachers, T)        teachers fitted first, whose digit distributions the model also learns
"""

from __future__ import annotations

from keras_models.core.errors import ConfigError
from keras_models.training.levers import Lever


def needs_shared(cfg, what: str) -> None:
    if not cfg.arch.shared:
        raise ConfigError(f"{what} acts on the shared digit classifier; it needs a weight-sharing model")


class WeightDecay(Lever):
    """AdamW's decay of the kernels, decoupled from the gradient, in place of Adam."""

    def __init__(self, decay: float):
        self.decay = float(decay)

    def check(self, cfg, images) -> None:
        if not self.decay > 0:
            raise ConfigError(f"WeightDecay: the decay must be positive, got {self.decay}")
        if cfg.recipe.optimizer != "adam":
            raise ConfigError("WeightDecay is AdamW's decay; it needs --optimizer adam")

    def optimizer(self, optimizer):
        import keras

        # The recipe's Adam as AdamW: the same learning rate or schedule, betas and epsilon.
        adamw = keras.optimizers.AdamW.from_config(
            {**optimizer.get_config(), "name": "adamw", "weight_decay": self.decay}
        )
        # Decay the kernels only: shrinking biases or batch norm's scale and shift regularises nothing.
        adamw.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        adamw.use_ema, adamw.ema_momentum = optimizer.use_ema, optimizer.ema_momentum
        return adamw


class MovingAverage(Lever):
    """An exponential moving average of the weights, which fit() copies into the model when it
    ends (Optimizer.finalize_variable_values): the averaged weights are evaluated and exported."""

    def __init__(self, momentum: float = 0.99):
        self.momentum = float(momentum)

    def check(self, cfg, images) -> None:
        if not 0 < self.momentum < 1:
            raise ConfigError(f"MovingAverage: the momentum must be in (0, 1), got {self.momentum}")

    def optimizer(self, optimizer):
        # Read by the optimizer when it builds (its first step), as its own constructor sets them.
        optimizer.use_ema, optimizer.ema_momentum = True, self.momentum
        return optimizer


class Repair(Lever):
    """Every training batch's 2N digits dealt into N new pairs, their targets from the digits'
    classes: a tf.data pipeline in place of the project's."""

    def dataset(self, pairs, targets: dict, batch_size: int, seed: int):
        import tensorflow as tf

        from keras_models.data.pipeline import prepared

        ds = tf.data.Dataset.from_tensor_slices((pairs.x, pairs.classes)).cache()
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
        # One stateless seed per batch, new every epoch, so a run stays reproducible.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        keys = tuple(targets)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda batch, s: repaired(*batch, s, keys), num_parallel_calls=tf.data.AUTOTUNE
        )
        return prepared(ds)


def repaired(x, classes, seed, keys: tuple):
    """A batch (x (N, 2, H, W), classes (N, 2)) with its 2N digits permuted into N new pairs."""
    import tensorflow as tf

    from keras_models.data.images import output_targets

    shape = tf.shape(x)
    digits = tf.reshape(x, tf.concat([[2 * shape[0]], shape[2:]], 0))
    order = tf.random.experimental.stateless_shuffle(tf.range(2 * shape[0]), seed)
    x = tf.reshape(tf.gather(digits, order), shape)
    classes = tf.reshape(tf.gather(tf.reshape(classes, [-1]), order), [-1, 2])
    return x, output_targets(tf.cast(classes[:, 0] <= classes[:, 1], tf.float32), classes, keys)


class Elastic(Lever):
    """Elastic distortions of each training digit (lever_layers.ElasticDistortion), after the
    spec's shifts and rotations."""

    def check(self, cfg, images) -> None:
        needs_shared(cfg, "Elastic")

    def digits(self, digits):
        from . import lever_layers

        return lever_layers.ElasticDistortion(name="augment_elastic")(digits)


class LearnedLossWeights(Lever):
    """Uncertainty weighting of the compare and digit losses (lever_layers.LearnedTemperature):
    each output's logits divided by a learned temperature, every loss weighted 1."""

    def check(self, cfg, images) -> None:
        if not cfg.arch.aux:
            raise ConfigError("LearnedLossWeights weighs the compare and digit losses; it needs an aux model")

    def logits(self, digits, logits):
        from . import lever_layers

        return lever_layers.LearnedTemperature(tasks=2, name="digit_temperature")(logits)

    def compare_logit(self, logit):
        from . import lever_layers

        return lever_layers.LearnedTemperature(name="compare_temperature")(logit)

    def loss_weights(self, weights: dict) -> dict:
        # The temperatures learn the weights; the parameter-free comparer's loss keeps weight 1.
        return {k: 1.0 for k in weights}


class Pretrain(Lever):
    """The shared classifier first fitted `epochs` epochs on the single labelled digits outside
    the round's pairs (lever_layers.PretrainClassifier), before the pair model's first step."""

    def __init__(self, epochs: int):
        self.epochs = int(epochs)

    def check(self, cfg, images) -> None:
        needs_shared(cfg, "Pretrain")
        if self.epochs < 1:
            raise ConfigError(f"Pretrain: epochs must be a positive integer, got {self.epochs}")
        train = images[0]
        if len(train.images) <= 2 * cfg.recipe.pairs:
            raise ConfigError(
                f"{train.source}: no training images outside the {cfg.recipe.pairs} pairs to pre-train on"
            )

    def callbacks(self, fit) -> list:
        from keras_models.data.images import unused_images

        outside = unused_images(fit.images[0], fit.cfg.recipe.pairs, fit.data.drawn)
        from . import lever_layers

        return [lever_layers.PretrainClassifier(outside, fit.cfg, fit.strategy, self.epochs)]


class Distill(Lever):
    """Knowledge distillation (Hinton, Vinyals & Dean 2015): per round, `teachers` models fitted
    first with the same settings and the other levers (each kept in round-NN/teacher-T), whose
    digit distributions, softened by `temperature`, the model also learns (lever_layers.
    Distillation); the model kept is the student alone."""

    # The teachers' soft digit targets weigh what the hard digit targets weigh (0.2 + 0.2).
    WEIGHT = 0.4

    def __init__(self, teachers: int = 1, temperature: float = 4.0):
        self.teachers, self.temperature = int(teachers), float(temperature)
        self._fitted = []

    def check(self, cfg, images) -> None:
        from keras_models.training.rules import last_seed
        from keras_models.training.settings import MAX_SEED

        needs_shared(cfg, "Distill")
        if self.teachers < 1 or not self.temperature > 0:
            raise ConfigError(
                f"Distill: teachers >= 1 and a positive temperature, got {self.teachers}, {self.temperature}"
            )
        if cfg.run.strategy in ("mirrored", "multiworker"):
            raise ConfigError("Distill trains its teachers and the model in one process; use --strategy default")
        if last_seed(cfg, self.teachers) > MAX_SEED:
            raise ConfigError(
                f"seeds must stay below 2**32: {self.teachers} teachers reach {last_seed(cfg, self.teachers)}"
            )

    def before_fit(self, fit) -> list[dict]:
        from keras_models.training.results import evaluate_pairs, scoring_batch
        from keras_models.training.rules import MEMBER_SEED_STRIDE

        cfg, data, runner = fit.cfg, fit.data, fit.runner
        others = tuple(lever for lever in runner.levers if lever is not self)
        self._fitted, parts = [], []
        for k in range(self.teachers):
            # Seeds after the members': a teacher never shares its initial weights with a student.
            seed = data.seed + MEMBER_SEED_STRIDE * (cfg.recipe.member + cfg.recipe.members + k)
            model, part = runner.fit_kept(runner.fit_for(cfg, seed, f"teacher-{k}", data), data, others, fit)
            if part.status != "ok":
                return [*parts, {"teacher": k, **part.to_dict(), "message": f"teacher {k}: {part.message}"}]
            self._fitted.append(model)
            dev = {}
            if data.dev is not None:
                dev["dev_accuracy"] = evaluate_pairs(model, data.dev, scoring_batch(cfg))["accuracy"]
            parts.append({"teacher": k, **part.to_dict(), **dev})
        return parts

    def logits(self, digits, logits):
        from . import lever_layers

        # The teachers were trained on the same pairs, so the student's normalisation is theirs.
        classifiers = [t.get_layer("classifier") for t in self._fitted]
        return lever_layers.Distillation(classifiers, self.temperature, self.WEIGHT, name="distillation")(
            [digits, logits]
        )

    def kept(self, model, fit):
        """The student: the model of the round's settings and other levers, without the
        teachers, holding the trained model's weights layer by layer."""
        from keras_models.models.builder import BuildHooks, build_model
        from keras_models.training.levers import chained

        others = tuple(lever for lever in fit.runner.levers if lever is not self)
        hooks = BuildHooks(*(chained(others, hook) for hook in ("digits", "logits", "compare_logit")))
        student = build_model(fit.cfg.spec, *fit.stats, hooks=hooks)
        for layer in student.layers:
            if layer.weights:
                layer.set_weights(model.get_layer(layer.name).get_weights())
        return student
