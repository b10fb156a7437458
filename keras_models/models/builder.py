"""The builder of every architecture (keras_models.models.architectures), with the functional API,
from a `ModelSpec`: what the registry says of the architecture (its family, whether one
classifier is shared by both digits, whether the digit losses are auxiliary) decides the graph.

Every model takes the input `pair` (None, 2, 14, 14) in raw pixel units (normalisation is its
first layer) and returns a dict: `compare` (None, 1), the probability that digit1 <= digit2,
and for the weight-sharing models `digit1` and `digit2` (None, 10), class probabilities.
"""

from __future__ import annotations

from contextlib import contextmanager

import keras

from keras_models.models.layers import (
    BatchToDigits,
    DigitsToBatch,
    ExpectedLeq,
    MeanOverViews,
    OneCycle,
    ShiftedViews,
    SmoothedSparseCrossentropy,
)
from keras_models.models.normalization import FusedBatchNormalization, PixelNormalization
from keras_models.training.config import PAIR_SHAPE, TTA_VIEWS, Config
from keras_models.training.levers import LEVERS, Graph
from keras_models.training.settings import ModelSpec

AUX_LOSS_WEIGHTS = {"compare": 0.6, "digit1": 0.2, "digit2": 0.2}
# The weight-sharing models without aux still report digit accuracy, but learn from compare only.
SHARED_LOSS_WEIGHTS = {"compare": 1.0, "digit1": 0.0, "digit2": 0.0}
# With --teachers, the teachers' soft digit targets weigh what the hard digit targets weigh.
DISTILL_WEIGHT = AUX_LOSS_WEIGHTS["digit1"] + AUX_LOSS_WEIGHTS["digit2"]
# PyTorch's batch-norm defaults (the report's framework, and the peer's). Keras' own momentum
# of 0.99 leaves the moving statistics ~8% at their initial values after the 250 steps of a
# 25-epoch, 1000-pair run, which costs test accuracy in inference mode.
BN = {"momentum": 0.9, "epsilon": 1e-5}


@contextmanager
def dtype_policy(name: str):
    """Layers built inside take the Keras dtype policy `name`. Keras reads it from global state
    when a layer is made, so the previous policy is restored on the way out."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def batch_norm(name: str, synchronized: bool):
    return FusedBatchNormalization(name=name, synchronized=synchronized, **BN)


def dense_stack(x, widths, cfg: Config, prefix: str, sync_bn: bool = False):
    """Dense-BN-ReLU-Dropout per width, as in the report."""
    for i, units in enumerate(widths, 1):
        x = keras.layers.Dense(units, name=f"{prefix}_dense{i}")(x)
        if cfg.batch_norm:
            x = batch_norm(f"{prefix}_bn{i}", sync_bn)(x)
        x = keras.layers.ReLU(name=f"{prefix}_relu{i}")(x)
        if cfg.dropout > 0:
            x = keras.layers.Dropout(cfg.dropout, name=f"{prefix}_dropout{i}")(x)
    return x


def conv_stack(x, cfg: Config, sync_bn: bool = False):
    """Per block: cfg.convs x (conv3x3-BN-ReLU), maxpool2. Channels last. A block that would pool an
    image of 1x1 (a 4th block: 14 -> 7 -> 3 -> 1) keeps it instead."""
    for b, filters in enumerate(cfg.filters, 1):
        for c in range(1, cfg.convs + 1):
            name = f"block{b}_conv{c}"
            x = keras.layers.Conv2D(filters, 3, padding="same", name=name)(x)
            if cfg.batch_norm:
                x = batch_norm(f"{name}_bn", sync_bn)(x)
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
        if x.shape[1] >= 2:
            x = keras.layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    return keras.layers.Flatten(name="flatten")(x)


def features(x, cfg: Config, prefix: str, sync_bn: bool = False):
    """The body shared by plain models and classifiers: conv blocks (CNN family) then dense."""
    if cfg.family == "cnn":
        x = conv_stack(x, cfg, sync_bn)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
    return dense_stack(x, cfg.hidden_units, cfg, prefix, sync_bn)


def build_classifier(cfg: Config, sync_bn: bool = False) -> keras.Model:
    """The digit classifier shared by both digits: (14, 14, 1) -> 10 logits."""
    image = keras.Input(shape=(14, 14, 1), name="digit")
    x = features(image, cfg, "classifier", sync_bn)
    logits = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(image, logits, name="classifier")


def build_model(
    spec: ModelSpec | Config,
    mean: float = 0.0,
    variance: float = 1.0,
    sync_bn: bool = False,
    teachers: list[keras.Model] | None = None,
    temperature: float | None = None,
) -> keras.Model:
    """The model of `spec` (a Config's spec, given a Config). `mean`/`variance`: pixel
    statistics of the training pairs, baked into the model.

        >>> model = build_model(Config(model="cnn_aux"), mean=33.0, variance=80.0**2)
        >>> model(pairs)["compare"]  # P(digit1 <= digit2); also "digit1", "digit2"

    `sync_bn`: batch statistics over the global batch when training on several replicas, so
    that every replica keeps the same moving statistics and a replicated run computes what
    one device with the global batch would. `teachers`: trained models of the same kind whose
    classifiers the model also learns from (a Distillation layer, softened by `temperature`);
    the result is then a training model, whose weights `student_of` copies into one without
    the teachers."""
    cfg = spec.spec if isinstance(spec, Config) else spec
    pair = keras.Input(shape=PAIR_SHAPE, name="pair")
    x = PixelNormalization(mean, variance, name="normalize")(pair)

    # `cfg.precision` reaches the layers that carry the arithmetic; the normalisation, the
    # augmentation, the comparer and the outputs stay float32, so that every model answers
    # float32 probabilities and its losses are computed in float32.
    if not cfg.arch.shared:
        if cfg.family == "cnn":
            x = keras.layers.Permute((2, 3, 1), name="channels_last")(x)  # (14, 14, 2)
        with dtype_policy(cfg.precision):
            h = features(x, cfg, "head", sync_bn)
        compare = keras.layers.Dense(1, activation="sigmoid", name="compare")(h)
        return keras.Model(pair, {"compare": compare}, name=cfg.model)

    with dtype_policy(cfg.precision):
        classifier = build_classifier(cfg, sync_bn)
    graph = Graph(mean, variance, tuple(teachers or ()), temperature)
    digits = DigitsToBatch(name="digits_to_batch")(x)
    for lever in LEVERS:
        digits = lever.digits(cfg, digits, graph)
    logits = classifier(digits)
    for lever in LEVERS:
        logits = lever.digit_logits(cfg, logits, digits, graph)
    logits1, logits2 = BatchToDigits(name="batch_to_digits")(logits)
    digit1 = keras.layers.Softmax(name="digit1")(logits1)
    digit2 = keras.layers.Softmax(name="digit2")(logits2)
    if cfg.comparer_type == "expected":
        compare = ExpectedLeq(name="compare")([digit1, digit2])
    else:
        h = keras.layers.Concatenate(name="digit_probabilities")([digit1, digit2])
        for i, units in enumerate(cfg.comparer, 1):
            h = keras.layers.Dense(units, activation="relu", name=f"comparer_dense{i}")(h)
        compare = next((c for lever in LEVERS if (c := lever.compare(cfg, h)) is not None), None)
        if compare is None:
            compare = keras.layers.Dense(1, activation="sigmoid", name="compare")(h)
    outputs = {"compare": compare, "digit1": digit1, "digit2": digit2}
    return keras.Model(pair, outputs, name=cfg.model)


def student_of(trained: keras.Model, cfg: Config, mean: float, variance: float) -> keras.Model:
    """The model `build_model(cfg, mean, variance)` holding the weights of a training model
    built with teachers: the same layers by name, without the teachers."""
    student = build_model(cfg, mean, variance)
    for layer in student.layers:
        if layer.weights:
            layer.set_weights(trained.get_layer(layer.name).get_weights())
    return student


def ensemble_model(members: list[keras.Model], views=((0, 0),), name: str = "ensemble") -> keras.Model:
    """One model from trained `members` of the same architecture, for inference: each sees
    every pair moved by each (dy, dx) of `views`; the digit distributions are averaged over
    members and views and compared by ExpectedLeq (which the members' own comparer is, when
    they have one: a learned comparer's outputs are averaged instead). Same input and outputs
    as a member, so it evaluates, saves and exports like one."""
    pair = keras.Input(shape=PAIR_SHAPE, name="pair")
    x = ShiftedViews(views, name="test_time_views")(pair) if len(views) > 1 else pair
    outs = []
    for i, member in enumerate(members):
        member.name = f"member{i}"  # nested models need unique names
        outs.append(member(x))
    keys = list(outs[0].keys())
    expected = "digit1" in keys and all(isinstance(m.get_layer("compare"), ExpectedLeq) for m in members)

    def mean(key):
        y = outs[0][key] if len(outs) == 1 else keras.layers.Average(name=f"{key}_members")([o[key] for o in outs])
        return MeanOverViews(len(views), name=f"{key}_views")(y) if len(views) > 1 else y

    averaged = {k: mean(k) for k in keys if not (expected and k == "compare")}
    if expected:
        averaged["compare"] = ExpectedLeq(name="compare")([averaged["digit1"], averaged["digit2"]])
    return keras.Model(pair, {k: averaged[k] for k in keys}, name=name)


def loss_weights(cfg: Config) -> dict:
    if not cfg.arch.shared:
        return {"compare": 1.0}
    weights = dict(AUX_LOSS_WEIGHTS if cfg.arch.aux else SHARED_LOSS_WEIGHTS)
    for lever in LEVERS:
        weights = lever.loss_weights(cfg, weights)
    return weights


def learning_rate(cfg: Config, steps_per_epoch: int):
    if cfg.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(cfg.lr, decay_steps=cfg.num_epochs * steps_per_epoch)
    if cfg.lr_schedule == "onecycle":
        return OneCycle(cfg.lr, steps=cfg.num_epochs * steps_per_epoch)
    return cfg.lr


def digit_loss(cfg: Config, name: str) -> keras.losses.Loss:
    if cfg.label_smoothing:
        return SmoothedSparseCrossentropy(cfg.label_smoothing, name=name)
    return keras.losses.SparseCategoricalCrossentropy(name=name)


def optimizer(cfg: Config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr, ema = learning_rate(cfg, steps_per_epoch), {k: v for lever in LEVERS for k, v in lever.optimizer(cfg).items()}
    if cfg.optimizer == "nesterov":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, **ema)
    if not cfg.weight_decay:
        return keras.optimizers.Adam(lr, **ema)
    opt = keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay, **ema)
    # Decay the kernels only: shrinking biases or batch norm's scale and shift regularises nothing.
    opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return opt


def compile_model(model: keras.Model, cfg: Config, steps_per_epoch: int = 10, replicated: bool = False) -> keras.Model:
    """The losses keyed by output name, their weights, metrics and optimizer of `cfg`.

        >>> cfg = Config(model="cnn_aux", lr=1e-3)
        >>> model = compile_model(build_model(cfg), cfg, steps_per_epoch=10)

    `replicated`: under a strategy with several replicas, where Keras 3 cannot run several
    steps per execution (keras-team/keras#19246: "You must feed a value for placeholder
    tensor" from the multi-step loop), one step per execution is used."""
    names = list(model.output.keys()) if isinstance(model.output, dict) else ["compare"]
    losses = {"compare": keras.losses.BinaryCrossentropy(name="compare_loss")}
    # Keras prefixes metric names with the output name only when there are several outputs;
    # naming it here gives every model the same `compare_accuracy` (and `val_compare_accuracy`).
    compare_metric = "accuracy" if len(names) > 1 else "compare_accuracy"
    metrics = {"compare": [keras.metrics.BinaryAccuracy(name=compare_metric)]}
    for name in names:
        if name.startswith("digit"):
            losses[name] = digit_loss(cfg, f"{name}_loss")
            metrics[name] = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    model.compile(
        optimizer=optimizer(cfg, steps_per_epoch),
        loss=losses,
        loss_weights={k: v for k, v in loss_weights(cfg).items() if k in names},
        metrics=metrics,
        jit_compile=cfg.jit_compile,
        steps_per_execution=1 if replicated else cfg.steps_per_execution,
    )
    return model


def targets_for(model: keras.Model, pairs) -> dict:
    """The pairs' targets, restricted to the model's outputs."""
    return pairs.targets(model.output.keys() if isinstance(model.output, dict) else ["compare"])


# Serving cost, counted on the layers: what the frontier's and the tuner's cost limit read.


def layer_flops(layer, images: int) -> int:
    """Multiply-adds x 2 of one forward pass of `layer` over `images` inputs."""
    if isinstance(layer, keras.Model):
        return sum(layer_flops(sub, images) for sub in layer.layers)
    if isinstance(layer, keras.layers.Conv2D):
        _, h, w, f = layer.output.shape
        k1, k2, cin, _ = layer.kernel.shape
        return 2 * h * w * k1 * k2 * cin * f * images
    if isinstance(layer, keras.layers.Dense):
        cin, units = layer.kernel.shape
        return 2 * cin * units * images
    return 0


def flops_per_pair(model) -> int:
    """Forward FLOPs of one pair: the shared classifier runs on both digits."""
    total = 0
    for layer in model.layers:
        images = 2 if isinstance(layer, keras.Model) and layer.name == "classifier" else 1
        total += layer_flops(layer, images)
    return total


def config_mflops(cfg: Config) -> float:
    """MFLOP per pair of the model `cfg` trains: one classifier pass per member and view."""
    views = len(TTA_VIEWS) if cfg.tta else 1
    return views * cfg.members * flops_per_pair(build_model(cfg)) / 1e6
