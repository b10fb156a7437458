"""Small registered layers (and one loss, one learning-rate schedule): the custom steps of the
models, serializable so that a saved `.keras` file loads with `safe_mode=True` (a `Lambda`
would be pickled bytecode)."""

from __future__ import annotations

import math

import keras
from keras import ops

# Registered where they are defined; imported so that `import keras_models.models.layers` registers
# every layer a saved model can hold.
from keras_models.models import normalization, pooling  # noqa: F401  (register their layers too)
from keras_models.models.normalization import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class DigitsToBatch(keras.layers.Layer):
    """(N, 2, H, W) -> (2N, H, W, 1): both digits of every pair stacked along the batch.

    The shared classifier then runs once over 2N images instead of twice over N (one large
    matmul per layer, and batch norm sees both digits, as in the PyTorch peer), and the
    convolutions get the channels-last layout that TensorFlow's CPU kernels train in.
    """

    def call(self, pair):
        digits = ops.transpose(pair, (1, 0, 2, 3))  # digit 1 of every pair first, then digit 2
        return ops.expand_dims(ops.reshape(digits, (-1, pair.shape[2], pair.shape[3])), -1)

    def compute_output_shape(self, input_shape):
        n = None if input_shape[0] is None else 2 * input_shape[0]
        return (n, input_shape[2], input_shape[3], 1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchToDigits(keras.layers.Layer):
    """(2N, K) -> two (N, K): undoes DigitsToBatch on the classifier's output."""

    def call(self, x):
        first, second = ops.split(x, 2, axis=0)
        return first, second

    def compute_output_shape(self, input_shape):
        n = None if input_shape[0] is None else input_shape[0] // 2
        return (n, *input_shape[1:]), (n, *input_shape[1:])


@keras.saving.register_keras_serializable(package=PACKAGE)
class ExpectedLeq(keras.layers.Layer):
    """Parameter-free comparer: P(d1 <= d2) = sum over i <= j of p1(i) p2(j), for two
    independent digit distributions. Output (N, 1), like the learned comparer."""

    def call(self, inputs):
        p1, p2 = inputs
        k = p1.shape[-1]
        upper = ops.triu(ops.ones((k, k), dtype=p1.dtype))  # upper[i, j] = 1 when i <= j
        prob = ops.sum(ops.matmul(p1, upper) * p2, axis=-1, keepdims=True)
        # Rounding can push the sum a hair past 1, which binary cross-entropy would punish.
        return ops.clip(prob, 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer class targets with label smoothing: Keras 3's
    SparseCategoricalCrossentropy has no `label_smoothing`, and one-hot targets would change
    every model's target dict. The smoothed target puts 1 - s + s/K on the class, s/K elsewhere."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        k = y_pred.shape[-1]
        one_hot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), k, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


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
class ShiftedViews(keras.layers.Layer):
    """(N, 2, H, W) -> (V N, 2, H, W): every pair moved by each (dy, dx) of `views`, the
    background (raw 0) filling in, view after view along the batch. Test-time augmentation:
    MeanOverViews averages the model's outputs back to (N, ...)."""

    def __init__(self, views=((0, 0),), **kwargs):
        super().__init__(**kwargs)
        self.views = tuple((int(dy), int(dx)) for dy, dx in views)

    def call(self, pair):
        h, w = pair.shape[2], pair.shape[3]
        padded = ops.pad(pair, ((0, 0), (0, 0), (h, h), (w, w)))
        return ops.concatenate(
            [padded[:, :, h - dy : 2 * h - dy, w - dx : 2 * w - dx] for dy, dx in self.views], axis=0
        )

    def compute_output_shape(self, input_shape):
        n = None if input_shape[0] is None else len(self.views) * input_shape[0]
        return (n, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "views": [list(v) for v in self.views]}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MeanOverViews(keras.layers.Layer):
    """(V N, K) -> (N, K): the mean over the V views that ShiftedViews stacked."""

    def __init__(self, views: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.views = int(views)

    def call(self, x):
        return ops.mean(ops.stack(ops.split(x, self.views, axis=0)), axis=0)

    def compute_output_shape(self, input_shape):
        n = None if input_shape[0] is None else input_shape[0] // self.views
        return (n, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "views": self.views}


@keras.saving.register_keras_serializable(package=PACKAGE)
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle schedule (Smith & Topin 2019) with PyTorch's OneCycleLR defaults: a
    linear rise from peak / 25 to `peak` over the first 30% of `steps`, then a cosine descent
    to peak / 25e4. Short runs can use a peak that a constant rate could not survive."""

    def __init__(self, peak: float, steps: int, warmup: float = 0.3, div: float = 25.0, final_div: float = 1e4):
        self.peak, self.steps, self.warmup = float(peak), int(steps), float(warmup)
        self.div, self.final_div = float(div), float(final_div)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rise = max(1.0, self.warmup * self.steps)
        start, end = self.peak / self.div, self.peak / (self.div * self.final_div)
        up = start + (self.peak - start) * step / rise
        fall_at = ops.clip((step - rise) / max(1.0, self.steps - rise), 0.0, 1.0)
        down = end + (self.peak - end) * 0.5 * (1.0 + ops.cos(math.pi * fall_at))
        return ops.where(step < rise, up, down)

    def get_config(self):
        return {
            "peak": self.peak,
            "steps": self.steps,
            "warmup": self.warmup,
            "div": self.div,
            "final_div": self.final_div,
        }


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
