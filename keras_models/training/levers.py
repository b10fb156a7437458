"""The optional training levers, each one unit here. A lever's settings are declared with every
other setting (keras_models.training.settings, the study levers marked there); all it does is in its
class below. The core calls every lever at each of the points of `Lever`, and a lever that is
off, or has nothing to do at a point, leaves things as they are:

    rule            a combination of settings it cannot train (config.Config)
    check_run       data or devices it needs (training.prepare, before anything is written)
    train_pairs     the round's training pairs (rounds.RoundData)
    batches         options of the tf.data pipeline (fitting.fit_model)
    digits          training-only layers on the 2N digits of a batch (models.build_model)
    digit_logits    layers on the classifier's logits (models.build_model)
    compare         the learned comparer's output layer (models.build_model)
    loss_weights    the weights of the three losses (models.compile_model)
    optimizer       options of the optimizer (models.optimizer)
    before_fit      work on a fresh model before it is fitted (fitting.fit_member)
    after_fit       the model a fit leaves (fitting.fit_member)
    before_members  models fitted in a round before its members (rounds.RoundRunner)

Adding a lever is a class here, an entry of LEVERS, and its settings' declarations. Keras is
imported inside the hooks: a Config checks the levers' rules before TensorFlow loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from keras_models.data.images import concat, swapped


@dataclass(frozen=True)
class Graph:
    """What the builder knows beyond the spec: the training pixels' statistics, and the
    teachers of a distilled model with their temperature."""

    mean: float
    variance: float
    teachers: tuple = ()
    temperature: float | None = None


class Lever:
    def rule(self, cfg) -> str | None:
        return None

    def check_run(self, cfg, images, strategy) -> None:
        pass

    def outside_images(self, cfg) -> bool:
        """Whether a round draws the training images outside its pairs for this lever."""
        return False

    def train_pairs(self, cfg, train):
        return train

    def batches(self, cfg) -> dict:
        return {}

    def digits(self, spec, digits, graph: Graph):
        return digits

    def digit_logits(self, spec, logits, digits, graph: Graph):
        return logits

    def compare(self, spec, h):
        return None

    def loss_weights(self, cfg, weights: dict) -> dict:
        return weights

    def optimizer(self, cfg) -> dict:
        return {}

    def before_fit(self, model, cfg, outside, strategy) -> None:
        pass

    def after_fit(self, model, cfg, train, teachers):
        return model

    def before_members(self, runner, data):
        """(models, their results as dicts, None); or, when one fails, (models up to it, their
        results, the failed RoundResult that ends the round)."""
        return [], [], None


class Augmentation(Lever):
    """--augment, --shift, --rotation: random shifts and rotations of each training digit."""

    def rule(self, cfg):
        if cfg.augment and not cfg.arch.shared:
            return "--augment needs a weight-sharing model"

    def digits(self, spec, digits, graph):
        if not spec.augment:
            return digits
        import keras

        # Active in training only. Fill with the normalised background, what a black pixel becomes.
        background = -graph.mean / max(graph.variance, 1e-12) ** 0.5
        if spec.shift:
            from keras_models.models.normalization import BackgroundTranslation

            digits = BackgroundTranslation(spec.shift / 14, spec.shift / 14, background, name="augment_shift")(digits)
        if spec.rotation:
            digits = keras.layers.RandomRotation(
                spec.rotation / 360, fill_mode="constant", fill_value=background, name="augment_rotate"
            )(digits)
        return digits


class Elastic(Lever):
    """--elastic: elastic distortions of each training digit (layers.ElasticDistortion)."""

    def rule(self, cfg):
        if cfg.elastic and not cfg.arch.shared:
            return "--elastic needs a weight-sharing model"

    def digits(self, spec, digits, graph):
        from keras_models.models.layers import ElasticDistortion

        return ElasticDistortion(name="augment_elastic")(digits) if spec.elastic else digits


AUGMENTATION_LAYERS = ("augment_shift", "augment_rotate", "augment_elastic")  # what `digits` adds, in order


class Swap(Lever):
    """--swap: every training pair is also trained on swapped, its target from the classes."""

    def train_pairs(self, cfg, train):
        return concat(train, swapped(train)) if cfg.swap else train


class Repair(Lever):
    """--repair: the digits of every training batch are dealt into new pairs (pipeline.repaired)."""

    def batches(self, cfg):
        return {"repair": True} if cfg.repair else {}


class Ema(Lever):
    """--ema: a moving average of the weights is evaluated and exported. fit() ends by copying
    the averaged weights into the model (Optimizer.finalize_variable_values)."""

    def optimizer(self, cfg):
        return {"use_ema": True, "ema_momentum": 0.99} if cfg.ema else {}


class Distillation(Lever):
    """--teachers, --distill-temperature: per round, first fit teachers with the same settings;
    the model then also learns their softened digit distributions (layers.Distillation), and
    the student alone (models.student_of) is kept and exported."""

    def rule(self, cfg):
        if cfg.teachers and not cfg.arch.shared:
            return "--teachers distils the digit classifier; it needs a weight-sharing model"
        if cfg.teachers and cfg.strategy in ("mirrored", "multiworker"):
            return "--teachers trains its teachers and the model in one process; use --strategy default"

    def check_run(self, cfg, images, strategy):
        from keras_models.core.errors import ConfigError

        if cfg.teachers and strategy.num_replicas_in_sync > 1:  # `auto` over several GPUs
            raise ConfigError("--teachers trains its teachers and the model on one device; use --strategy default")

    def digit_logits(self, spec, logits, digits, graph):
        if not graph.teachers:
            return logits
        from keras_models.models.builder import DISTILL_WEIGHT
        from keras_models.models.layers import Distillation as DistillationLayer

        # The teachers were trained on the same pairs, so the student's normalisation is theirs.
        classifiers = [t.get_layer("classifier") for t in graph.teachers]
        return DistillationLayer(classifiers, graph.temperature, DISTILL_WEIGHT, name="distillation")([digits, logits])

    def after_fit(self, model, cfg, train, teachers):
        if not teachers:
            return model
        from keras_models.data.pipeline import pixel_stats
        from keras_models.models.builder import student_of

        return student_of(model, cfg.spec, *pixel_stats(train))

    def before_members(self, runner, data):
        from keras_models.training.config import MEMBER_SEED_STRIDE
        from keras_models.training.results import evaluate_pairs

        cfg, models, parts = runner.cfg, [], []
        for k in range(cfg.teachers):
            # Seeds after the members': a teacher never shares its initial weights with a student.
            seed = data.seed + MEMBER_SEED_STRIDE * (cfg.member + cfg.members + k)
            model, part = runner.fit_kept(cfg.replace(teachers=0), seed, f"teacher-{k}", data)
            models.append(model)
            if part.status != "ok":
                return models, parts, runner.failed(data, part, f"teacher {k}: {part.message}")
            dev = {"dev_accuracy": evaluate_pairs(model, data.dev)["accuracy"]} if data.dev is not None else {}
            parts.append({"teacher": k, **part.to_dict(), **dev})
        return models, parts, None


class LossWeighting(Lever):
    """--loss-weighting learned: one learned temperature per task weighs the losses (Kendall et
    al. 2018), on the digit logits and on the learned comparer's logit."""

    def rule(self, cfg):
        if cfg.loss_weighting == "learned" and not cfg.arch.aux:
            return "--loss-weighting learned weighs the compare and digit losses; it needs an aux model"

    def digit_logits(self, spec, logits, digits, graph):
        from keras_models.models.layers import LearnedTemperature

        return (
            LearnedTemperature(tasks=2, name="digit_temperature")(logits)
            if spec.loss_weighting == "learned"
            else logits
        )

    def compare(self, spec, h):
        if spec.loss_weighting != "learned":
            return None
        import keras

        from keras_models.models.layers import LearnedTemperature

        logit = keras.layers.Dense(1, name="compare_logit")(h)
        logit = LearnedTemperature(name="compare_temperature")(logit)
        return keras.layers.Activation("sigmoid", name="compare")(logit)

    def loss_weights(self, cfg, weights):
        # The temperatures learn the weights; the parameter-free comparer's loss keeps weight 1.
        return {k: 1.0 for k in weights} if cfg.loss_weighting == "learned" and cfg.arch.shared else weights


class Pretraining(Lever):
    """--pretrain-epochs: the shared classifier is first fitted on the single labelled digits
    outside the round's pairs, through the model's normalisation and augmentation layers."""

    def rule(self, cfg):
        if cfg.pretrain_epochs and not cfg.arch.shared:
            return "--pretrain-epochs pre-trains the digit classifier; it needs a weight-sharing model"

    def check_run(self, cfg, images, strategy):
        from keras_models.core.errors import ConfigError

        if cfg.pretrain_epochs and len(images[0].images) == 2 * cfg.pairs:
            raise ConfigError(f"{images[0].source}: no training images outside the {cfg.pairs} pairs to pre-train on")

    def outside_images(self, cfg):
        return cfg.pretrain_epochs > 0

    def before_fit(self, model, cfg, outside, strategy):
        if not cfg.pretrain_epochs:
            return
        import keras

        from keras_models.models.builder import digit_loss

        with strategy.scope():
            digit = keras.Input(shape=(14, 14, 1), name="single_digit")  # "digit" is the classifier's input
            x = model.get_layer("normalize")(digit)
            for name in AUGMENTATION_LAYERS:  # in the pair model's order
                if name in [layer.name for layer in model.layers]:
                    x = model.get_layer(name)(x)
            probs = keras.layers.Softmax(name="digit_probabilities")(model.get_layer("classifier")(x))
            single = keras.Model(digit, probs, name="pretrain")
            single.compile(
                optimizer=keras.optimizers.Adam(cfg.lr), loss=digit_loss(cfg, "digit_loss"), metrics=["accuracy"]
            )
            # Two digits per pair: the same number of images per step as the pair model sees.
            single.fit(
                outside.images[..., None],
                outside.labels,
                batch_size=2 * cfg.batch_size,
                epochs=cfg.pretrain_epochs,
                shuffle=True,
                verbose=0 if cfg.quiet else 2,
            )


# In the order the core applies them: the augmentations in the order their layers follow each
# other, distillation's logits before the loss weighting's temperature.
LEVERS = (Augmentation(), Elastic(), Swap(), Repair(), Ema(), Distillation(), LossWeighting(), Pretraining())
