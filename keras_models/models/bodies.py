"""The bodies an architecture is made of. An architecture names its bodies in the registry
(keras_models.models.architectures): the project's own (`DenseBody`, `ConvBody`), and the
report's networks as its authors built them (keras_models.models.report_bodies), chosen by the
spec's `network`. The builder asks the selected body for its layers, so a new body is a class
here, or anywhere, with the methods of `Body`. Keras is imported inside the methods: the
registry, and so every Config, is read before TensorFlow loads."""

from __future__ import annotations

# PyTorch's batch-norm defaults (the report's framework, and the peer's). Keras' own momentum
# of 0.99 leaves the moving statistics ~8% at their initial values after the 250 steps of a
# 25-epoch, 1000-pair run, which costs test accuracy in inference mode.
BN = {"momentum": 0.9, "epsilon": 1e-5}


def batch_norm(name: str, synchronized: bool):
    from keras_models.models.normalization import FusedBatchNormalization

    return FusedBatchNormalization(name=name, synchronized=synchronized, **BN)


class Body:
    """What the builder asks of a body. `plain` maps a normalised pair (N, 2, 14, 14) to the
    features that the plain model's `compare` unit reads; `classifier` maps one digit
    (N, 14, 14, 1) to the features that the shared classifier's 10 logits read. `init(fan_in)`
    gives the initialisers of the dense units the builder adds (compare, logits, comparer).

    `comparer_reads`: what the learned comparer of a weight-sharing model is handed, the digit
    "probabilities" or the classifier's raw "logits". `fixed`: spec settings this body does not
    read; a spec that sets one away from its default is refused rather than silently ignored."""

    name = ""
    comparer_reads = "probabilities"
    fixed: tuple[str, ...] = ()
    # Hidden widths that follow the ones a figure of the report varies (its `[w] * (layers - 1)`).
    tail: tuple[int, ...] = ()

    def plain(self, x, spec, sync_bn: bool = False):
        raise NotImplementedError

    def classifier(self, digit, spec, sync_bn: bool = False):
        raise NotImplementedError

    def init(self, fan_in: int) -> dict:
        return {}


def dense_stack(x, widths, prefix: str, batch_norm_on: bool, dropout: float, sync_bn: bool = False):
    """Dense-BN-ReLU-Dropout per width (batch norm and dropout as the spec sets them)."""
    import keras

    for i, units in enumerate(widths, 1):
        x = keras.layers.Dense(units, name=f"{prefix}_dense{i}")(x)
        if batch_norm_on:
            x = batch_norm(f"{prefix}_bn{i}", sync_bn)(x)
        x = keras.layers.ReLU(name=f"{prefix}_relu{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"{prefix}_dropout{i}")(x)
    return x


class DenseBody(Body):
    """The MLP family: the digits flattened, then `spec.hidden_units` dense layers."""

    name = "mlp"

    def plain(self, x, spec, sync_bn: bool = False):
        return self.classifier(x, spec, sync_bn, prefix="head")

    def classifier(self, digit, spec, sync_bn: bool = False, prefix: str = "classifier"):
        import keras

        x = keras.layers.Flatten(name="flatten")(digit)
        return dense_stack(x, spec.hidden_units, prefix, spec.batch_norm, spec.dropout, sync_bn)


class ConvBody(Body):
    """The CNN family: per block, `spec.convs` x (conv3x3-BN-ReLU), then maxpool2, channels last;
    then the dense head. A block that would pool an image of 1x1 (a 4th block: 14 -> 7 -> 3 -> 1)
    keeps it instead."""

    name = "cnn"

    def plain(self, x, spec, sync_bn: bool = False):
        import keras

        x = keras.layers.Permute((2, 3, 1), name="channels_last")(x)  # (14, 14, 2)
        return self.classifier(x, spec, sync_bn, prefix="head")

    def classifier(self, digit, spec, sync_bn: bool = False, prefix: str = "classifier"):
        import keras

        x = digit
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
        return dense_stack(x, spec.hidden_units, prefix, spec.batch_norm, spec.dropout, sync_bn)
