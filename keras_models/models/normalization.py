"""Batch norm on TensorFlow's fused kernel, and the two layers that hold a round's constants as
weights (the pixel statistics, the shifts' fill). Registered, so that a saved `.keras` file
loads with `safe_mode=True` once `keras_models.models.layers` (which imports this module) is imported."""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "keras_models"


@keras.saving.register_keras_serializable(package=PACKAGE)
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras' BatchNormalization, computed by TensorFlow's fused kernel on images (N, H, W, C).

    Keras 3 normalises with about ten separate ops per layer (moments, then the affine
    transform) and as many again for their gradients; in TensorFlow's profile of a cnn_aux
    step on a 2-core Xeon they took 36% of the op time (docs/BENCHMARKS.md, the Xeon's step). The fused
    kernel computes the same function in one op each way, which oneDNN also fuses with the
    following ReLU. The moving statistics follow Keras' rule (biased batch variance). bfloat16
    images (the mixed_bfloat16 policy) are normalised with float32 statistics and weights, as
    Keras does. Anything else (dense inputs, masks, synchronized statistics, renormalisation,
    other dtypes, other backends) is left to Keras' own code."""

    def _fused(self, inputs, mask) -> bool:
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and not (self.synchronized or self.renorm)
            and self.center
            and self.scale
            and keras.backend.standardize_dtype(inputs.dtype) in ("float32", "bfloat16")
            and self.dtype == "float32"
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True
            )
            # The kernel returns the unbiased variance (PyTorch's rule); Keras keeps the biased one.
            shape = tf.shape(inputs)
            n = tf.cast(shape[0] * shape[1] * shape[2], variance.dtype)
            variance = variance * tf.maximum(n - 1.0, 0.0) / tf.maximum(n, 1.0)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
            return y
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            self.gamma,
            self.beta,
            mean=self.moving_mean,
            variance=self.moving_variance,
            epsilon=self.epsilon,
            is_training=False,
        )
        return y


@keras.saving.register_keras_serializable(package=PACKAGE)
class PixelNormalization(keras.layers.Layer):
    """(x - mean) / sqrt(variance), as keras.layers.Normalization(axis=None) computes it, with the
    training pairs' pixel statistics held as (non-trainable) weights. Keras' layer bakes them
    into the traced step as constants; as weights, one traced step serves every round of a run,
    each round setting its own statistics."""

    def __init__(self, mean: float = 0.0, variance: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_mean, self.initial_variance = float(mean), float(variance)

    def build(self, input_shape):
        self.mean = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.initial_mean), trainable=False, name="mean"
        )
        self.variance = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.initial_variance), trainable=False, name="variance"
        )

    def call(self, x):
        mean, variance = ops.cast(self.mean, x.dtype), ops.cast(self.variance, x.dtype)
        return ops.divide(ops.subtract(x, mean), ops.maximum(ops.sqrt(variance), keras.backend.epsilon()))

    def get_config(self):
        return {**super().get_config(), "mean": self.initial_mean, "variance": self.initial_variance}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BackgroundTranslation(keras.layers.RandomTranslation):
    """RandomTranslation with constant fill, the fill value (the normalised background, which
    depends on the round's pixel statistics) held as a weight for the reason PixelNormalization
    holds its statistics."""

    def __init__(self, height_factor, width_factor, fill_value: float = 0.0, **kwargs):
        kwargs.pop("fill_mode", None)
        super().__init__(height_factor, width_factor, fill_mode="constant", fill_value=float(fill_value), **kwargs)

    def build(self, input_shape):
        self.background = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.fill_value), trainable=False, name="background"
        )
        super().build(input_shape)

    def _translate_inputs(self, inputs, transformation, interpolation):
        if transformation is None:
            return inputs
        return self.backend.image.affine_transform(
            inputs,
            transform=self._get_translation_matrix(transformation["translations"]),
            interpolation=interpolation,
            fill_mode="constant",
            fill_value=ops.cast(self.background, "float32"),  # the kernel takes a float32 fill
            data_format=self.data_format,
        )
