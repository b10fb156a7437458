"""The bodies an architecture is made of, each one class: dense layers on the flattened digits
(`DenseBody`), or conv blocks, then dense layers (`ConvBody`). An architecture names its body in
the registry (keras_models.models.architectures), and the builder asks the body for its layers;
a new body is a class here, or anywhere, with the same two methods. Keras is imported inside
the methods: the registry, and so every Config, is read before TensorFlow loads."""

from __future__ import annotations

# PyTorch's batch-norm defaults (the report's framework, and the peer's). Keras' own momentum
# of 0.99 leaves the moving statistics ~8% at their initial values after the 250 steps of a
# 25-epoch, 1000-pair run, which costs test accuracy in inference mode.
BN = {"momentum": 0.9, "epsilon": 1e-5}


def batch_norm(name: str, synchronized: bool):
    from keras_models.models.normalization import FusedBatchNormalization

    return FusedBatchNormalization(name=name, synchronized=synchronized, **BN)


def dense_stack(x, widths, spec, prefix: str, sync_bn: bool = False):
    """Dense-BN-ReLU-Dropout per width, as in the report."""
    import keras

    for i, units in enumerate(widths, 1):
        x = keras.layers.Dense(units, name=f"{prefix}_dense{i}")(x)
        if spec.batch_norm:
            x = batch_norm(f"{prefix}_bn{i}", sync_bn)(x)
        x = keras.layers.ReLU(name=f"{prefix}_relu{i}")(x)
        if spec.dropout > 0:
            x = keras.layers.Dropout(spec.dropout, name=f"{prefix}_dropout{i}")(x)
    return x


class DenseBody:
    """The MLP family: the digits flattened, then `spec.hidden_units` dense layers."""

    name = "mlp"

    def plain_input(self, x):
        """A pair (N, 2, 14, 14), normalised, as the plain (non-sharing) model's body takes it."""
        return x

    def features(self, x, spec, prefix: str, sync_bn: bool = False):
        import keras

        x = keras.layers.Flatten(name="flatten")(x)
        return dense_stack(x, spec.hidden_units, spec, prefix, sync_bn)


class ConvBody:
    """The CNN family: per block, `spec.convs` x (conv3x3-BN-ReLU), then maxpool2, channels last;
    then the dense head. A block that would pool an image of 1x1 (a 4th block: 14 -> 7 -> 3 -> 1)
    keeps it instead."""

    name = "cnn"

    def plain_input(self, x):
        import keras

        return keras.layers.Permute((2, 3, 1), name="channels_last")(x)  # (14, 14, 2)

    def features(self, x, spec, prefix: str, sync_bn: bool = False):
        import keras

        for b, filters in enumerate(spec.filters, 1):
            for c in range(1, spec.convs + 1):
                name = f"block{b}_conv{c}"
                x = keras.layers.Conv2D(filters, 3, padding="same", name=name)(x)
                if spec.batch_norm:
                    x = batch_norm(f"{name}_bn", sync_bn)(x)
                x = keras.layers.ReLU(name=f"{name}_relu")(x)
            if x.shape[1] >= 2:
                x = keras.layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        return dense_stack(x, spec.hidden_units, spec, prefix, sync_bn)
