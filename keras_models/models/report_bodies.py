"""The report's networks as its authors built them in PyTorch, layer by layer: the same layer
order (batch norm before or after the ReLU, as they had it), widths, valid convolutions, pooling
strides and padding, dropout rates and places, and PyTorch's default initialisation. Each of the
six has the trainable parameters of the report's Table I, less the batch-norm layers that the
authors built and never called (tests/test_report_bodies.py counts them layer by layer).

    mlp, cc, cc_aux       392 (mlp) or 196 (one digit) -> [500, 500, 196], each
                          Linear-BN-Dropout(0.5)-ReLU; cc hands its 10 raw logits to the comparer
    cnn, cnn_cc, cnn_aux  Conv32-ReLU-Conv32-ReLU-BN-MaxPool(2, stride 1)-Dropout(0.25)-
                          Conv64-ReLU-Conv64-ReLU-BN-MaxPool(2, stride 2, pad 1)-Dropout(0.25),
                          valid 3x3 convolutions (14 -> 12 -> 10 -> 9 -> 7 -> 5 -> 3), then
                          [288, 144] Linear-BN-ReLU with Dropout(0.25) after all but the last;
                          the classifier has a Dropout(0.5) before them and hands its softmax
                          to the comparer

The widths follow `--hidden`, so that Figures 4-6 build `[w] * (layers - 1) + [196]`.
"""

from __future__ import annotations

import math

from keras_models.models.bodies import Body, batch_norm

# The settings of the project's bodies that these fixed networks do not read.
FIXED = ("filters", "convs", "dropout", "batch_norm")


def torch_init(fan_in: int) -> dict:
    """PyTorch's default for Linear and Conv2d (kaiming_uniform_ with a = sqrt(5), and its bias
    rule): kernel and bias both uniform in +-1/sqrt(fan_in)."""
    import keras

    bound = 1.0 / math.sqrt(fan_in)
    return {
        "kernel_initializer": keras.initializers.RandomUniform(-bound, bound),
        "bias_initializer": keras.initializers.RandomUniform(-bound, bound),
    }


def linear(x, units: int, name: str):
    import keras

    return keras.layers.Dense(units, name=name, **torch_init(x.shape[-1]))(x)


def conv(x, filters: int, name: str):
    import keras

    return keras.layers.Conv2D(filters, 3, padding="valid", name=name, **torch_init(9 * x.shape[-1]))(x)


class ReportDenseBody(Body):
    """The authors' MLP and the digit classifier of their CC and CC_AUX."""

    name = "mlp"
    comparer_reads = "logits"
    fixed = FIXED
    hidden = (500, 500, 196)
    # Figures 4-6 put a width in front of this last hidden layer, which the authors' scripts always append.
    tail = (196,)
    dropout = 0.5

    def init(self, fan_in: int) -> dict:
        return torch_init(fan_in)

    def plain(self, x, spec, sync_bn: bool = False):
        return self.classifier(x, spec, sync_bn, prefix="head")

    def classifier(self, digit, spec, sync_bn: bool = False, prefix: str = "classifier"):
        import keras

        x = keras.layers.Flatten(name="flatten")(digit)
        for i, units in enumerate(spec.hidden_units, 1):
            x = linear(x, units, f"{prefix}_dense{i}")
            x = batch_norm(f"{prefix}_bn{i}", sync_bn)(x)
            x = keras.layers.Dropout(self.dropout, name=f"{prefix}_dropout{i}")(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu{i}")(x)
        return x


class ReportConvBody(Body):
    """The authors' CNN and the digit classifier of their CNN_CC and CNN_AUX."""

    name = "cnn"
    comparer_reads = "probabilities"
    fixed = FIXED
    hidden = (288, 144)
    features_dropout, head_dropout, classifier_dropout = 0.25, 0.25, 0.5

    def init(self, fan_in: int) -> dict:
        return torch_init(fan_in)

    def features(self, x, sync_bn: bool):
        """The four valid 3x3 convolutions, batch norm after the ReLU, 14 x 14 -> 3 x 3 x 64."""
        import keras

        from keras_models.models.pooling import PaddedMaxPooling2D

        for b, filters in enumerate((32, 64), 1):
            for c in (1, 2):
                x = conv(x, filters, f"block{b}_conv{c}")
                x = keras.layers.ReLU(name=f"block{b}_conv{c}_relu")(x)
            x = batch_norm(f"block{b}_bn", sync_bn)(x)
            # Block 1 pools with stride 1 (10 -> 9), block 2 with stride 2 and PyTorch's padding of 1 (5 -> 3).
            stride, padding = (1, 0) if b == 1 else (2, 1)
            x = PaddedMaxPooling2D(2, stride, padding, name=f"block{b}_pool")(x)
            x = keras.layers.Dropout(self.features_dropout, name=f"block{b}_dropout")(x)
        return keras.layers.Flatten(name="flatten")(x)

    def head(self, x, spec, prefix: str, sync_bn: bool):
        import keras

        widths = spec.hidden_units
        for i, units in enumerate(widths, 1):
            x = linear(x, units, f"{prefix}_dense{i}")
            x = batch_norm(f"{prefix}_bn{i}", sync_bn)(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu{i}")(x)
            if i < len(widths):
                x = keras.layers.Dropout(self.head_dropout, name=f"{prefix}_dropout{i}")(x)
        return x

    def plain(self, x, spec, sync_bn: bool = False):
        import keras

        x = keras.layers.Permute((2, 3, 1), name="channels_last")(x)  # the pair as a 2-channel image
        return self.head(self.features(x, sync_bn), spec, "head", sync_bn)

    def classifier(self, digit, spec, sync_bn: bool = False):
        import keras

        x = keras.layers.Dropout(self.classifier_dropout, name="features_dropout")(self.features(digit, sync_bn))
        return self.head(x, spec, "classifier", sync_bn)
