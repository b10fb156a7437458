"""The Keras pieces of the study's levers (experiments/levers.py): the layers of learned loss
weights, elastic distortions and distillation, and the callback that pre-trains the classifier.
The layers are registered with Keras, so that a model that holds one (a round of the
learned-weights row keeps its temperatures) saves and loads with `safe_mode=True` once this
module is imported; experiments/levers.py imports it only when a lever builds, so that the
commands start without TensorFlow."""

from __future__ import annotations

import math

import keras
from keras import ops

PACKAGE = "keras_models_experiments"


@keras.saving.register_keras_serializable(package=PACKAGE)
class LearnedTemperature(keras.layers.Layer):
    """Learned loss weights for classification losses, in the form Kendall, Gal & Cipolla (2018,
    eq. 10) derive for them: the logits divided by a learned sigma^2 (s = log sigma^2, starting
    at 0), plus a loss of s / 2 per task. A task's gradients are then scaled by ~1 / sigma^2, so
    its weight against the other losses is learned; the s / 2 term keeps it from vanishing.
    A layer rather than a custom loss because Keras losses hold no trainable weights.
    `tasks`: how many losses read these logits (2 for the shared classifier's two digits)."""

    def __init__(self, tasks: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.tasks = int(tasks)

    def build(self, input_shape):
        self.log_variance = self.add_weight(name="log_variance", shape=(), initializer="zeros")

    def call(self, logits, training=None):
        if training:
            self.add_loss(0.5 * self.tasks * self.log_variance)
        return logits * ops.exp(-self.log_variance)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "tasks": self.tasks}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ElasticDistortion(keras.layers.Layer):
    """Elastic distortions of (N, H, W, 1) digits (Simard, Steinkraus & Platt 2003), in
    training only: a uniform random displacement field in [-1, 1] per pixel and axis,
    smoothed by a Gaussian of `sigma` pixels, scaled by `alpha`, and resampled bilinearly.
    The defaults are the paper's alpha 34 and sigma 4 for 28 px digits, scaled to 14 px
    (sigma halves; alpha, whose smoothed field shrinks as 1 / sigma, quarters)."""

    def __init__(self, alpha: float = 8.5, sigma: float = 2.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.alpha, self.sigma, self.seed = float(alpha), float(sigma), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        radius = int(math.ceil(2 * self.sigma))
        g = [math.exp(-0.5 * (i / self.sigma) ** 2) for i in range(-radius, radius + 1)]
        self.kernel_1d = [v / sum(g) for v in g]

    def call(self, images, training=None):
        if not training:
            return images
        shape = ops.shape(images)
        n, h, w = shape[0], images.shape[1], images.shape[2]
        field = keras.random.uniform((n, h, w, 2), -1.0, 1.0, seed=self.seed_generator)
        k = ops.convert_to_tensor(self.kernel_1d, dtype=images.dtype)
        # Separable Gaussian over both displacement channels at once (depthwise, zero padding).
        kernel_y = ops.tile(ops.reshape(k, (-1, 1, 1, 1)), (1, 1, 2, 1))
        kernel_x = ops.tile(ops.reshape(k, (1, -1, 1, 1)), (1, 1, 2, 1))
        field = ops.depthwise_conv(ops.depthwise_conv(field, kernel_y, padding="same"), kernel_x, padding="same")
        field = self.alpha * field
        ys = ops.cast(ops.reshape(ops.arange(h), (1, h, 1)), images.dtype) + field[..., 0]
        xs = ops.cast(ops.reshape(ops.arange(w), (1, 1, w)), images.dtype) + field[..., 1]
        return bilinear(images, ys, xs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "sigma": self.sigma, "seed": self.seed}


def bilinear(images, ys, xs):
    """images (N, H, W, 1) sampled at real coordinates ys, xs (N, H, W); points beyond the
    edge take the edge pixel (the background, for MNIST digits)."""
    h, w = images.shape[1], images.shape[2]
    ys, xs = ops.clip(ys, 0.0, h - 1.0), ops.clip(xs, 0.0, w - 1.0)
    y0, x0 = ops.floor(ys), ops.floor(xs)
    wy, wx = ys - y0, xs - x0
    y0, x0 = ops.cast(y0, "int32"), ops.cast(x0, "int32")
    y1, x1 = ops.minimum(y0 + 1, h - 1), ops.minimum(x0 + 1, w - 1)
    flat = ops.reshape(images, (ops.shape(images)[0], h * w))

    def at(y, x):
        return ops.take_along_axis(flat, ops.reshape(y * w + x, (ops.shape(y)[0], h * w)), axis=1)

    wy, wx = ops.reshape(wy, (-1, h * w)), ops.reshape(wx, (-1, h * w))
    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return ops.reshape(top * (1 - wy) + bottom * wy, ops.shape(images))


@keras.saving.register_keras_serializable(package=PACKAGE)
class Distillation(keras.layers.Layer):
    """Knowledge distillation (Hinton, Vinyals & Dean 2015) inside the training graph. Takes
    [digits, logits]: the (augmented) digits the student's classifier saw and its logits.
    The `teachers`' digit classifiers, frozen and always in inference mode, see the same
    digits, so the soft targets follow every augmented view. Adds `weight` x T^2 x
    KL(teachers || student), both softened by the temperature T, to the model's losses
    (the T^2 keeps its gradients on the scale of the hard targets'), and passes the logits on
    unchanged. Training only: the model to evaluate and export is built without it."""

    def __init__(self, teachers, temperature: float, weight: float, **kwargs):
        super().__init__(**kwargs)
        self.teachers = [
            t if isinstance(t, keras.Model) else keras.saving.deserialize_keras_object(t) for t in teachers
        ]
        for t in self.teachers:
            t.trainable = False
        self.temperature, self.weight = float(temperature), float(weight)

    def call(self, inputs):
        digits, logits = inputs
        t = self.temperature
        # training=False explicitly inside the call: a functional model passes its own
        # `training` on to every layer it calls, which would turn the teachers' dropout on.
        # A teacher's classifier may compute in bfloat16 (--precision); the loss is float32.
        taught = [ops.cast(teacher(digits, training=False), self.compute_dtype) for teacher in self.teachers]
        soft = ops.mean(ops.stack([ops.softmax(x / t) for x in taught]), 0)
        soft = ops.stop_gradient(soft)
        log_student = ops.log_softmax(logits / t)
        kl = ops.sum(soft * (ops.log(ops.maximum(soft, 1e-12)) - log_student), axis=-1)
        self.add_loss(self.weight * t * t * ops.mean(kl))
        return logits

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "weight": self.weight,
            "teachers": [keras.saving.serialize_keras_object(t) for t in self.teachers],
        }


class PretrainClassifier(keras.callbacks.Callback):
    """Before the pair model's first step, its shared classifier is fitted `epochs` epochs on the
    single labelled digits `outside` the round's pairs (Images), through the model's
    normalisation and augmentation layers, two digits a pair: as many images a step as the
    pair model sees."""

    def __init__(self, outside, cfg, strategy, epochs: int):
        super().__init__()
        self.outside, self.cfg, self.strategy, self.epochs = outside, cfg, strategy, epochs

    def on_train_begin(self, logs=None):
        from keras_models.models.builder import AUGMENTATION_LAYERS
        from keras_models.training.compile import digit_loss
        from keras_models.training.fitting import fit

        model, recipe = self.model, self.cfg.recipe
        with self.strategy.scope():
            digit = keras.Input(shape=(14, 14, 1), name="single_digit")  # "digit" is the classifier's input
            x = model.get_layer("normalize")(digit)
            present = [layer.name for layer in model.layers]
            for name in (*AUGMENTATION_LAYERS, "augment_elastic"):  # in the pair model's order
                if name in present:
                    x = model.get_layer(name)(x)
            probs = keras.layers.Softmax(name="digit_probabilities")(model.get_layer("classifier")(x))
            single = keras.Model(digit, probs, name="pretrain")
            single.compile(
                optimizer=keras.optimizers.Adam(recipe.lr), loss=digit_loss(recipe, "digit_loss"), metrics=["accuracy"]
            )
            fit(
                single,
                self.outside.images[..., None],
                self.outside.labels,
                epochs=self.epochs,
                batch_size=2 * recipe.batch_size,
                shuffle=True,
                verbose=0 if self.cfg.run.quiet else 2,
            )
