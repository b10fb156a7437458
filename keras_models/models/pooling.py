"""Max pooling with PyTorch's padding, for the report's CNN (keras_models.models.report_bodies).

PyTorch's `MaxPool2d(2, stride=2, padding=1)` pads both sides with -inf, so that a 5 x 5 map
pools to 3 x 3 over the windows (-1, 0), (1, 2), (3, 4). Keras' `padding="same"` pads only
after and pools (0, 1), (2, 3), (4, 5): another function of the input. Padding with a copy of
the edge row and column gives PyTorch's: a window that holds a padded cell also holds the edge
cell it copies, and a maximum is unchanged by a repeated value."""

from __future__ import annotations

import keras
from keras import ops

from keras_models.models.normalization import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class PaddedMaxPooling2D(keras.layers.Layer):
    """`torch.nn.MaxPool2d(pool_size, strides, padding)` on channels-last images."""

    def __init__(self, pool_size: int = 2, strides: int = 2, padding: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= padding <= pool_size // 2:
            # PyTorch's own limit: beyond it a window could hold padding alone.
            raise ValueError(f"padding must be in [0, {pool_size // 2}], got {padding}")
        self.pool_size, self.strides, self.padding = int(pool_size), int(strides), int(padding)

    def call(self, x):
        if self.padding:
            p = self.padding
            x = ops.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="symmetric")
        return ops.max_pool(x, self.pool_size, self.strides, padding="valid")

    def compute_output_shape(self, input_shape):
        def size(n):
            return None if n is None else (n + 2 * self.padding - self.pool_size) // self.strides + 1

        return (input_shape[0], size(input_shape[1]), size(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}
