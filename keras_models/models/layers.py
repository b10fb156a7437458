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
