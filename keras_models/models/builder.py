"""The builder of every architecture (keras_models.models.architectures), with the functional API,
from a `ModelSpec`: what the registry says of the architecture (its body, whether one classifier
is shared by both digits, whether the digit losses are auxiliary) decides the graph, and the
spec's augmentation and a round's levers (BuildHooks) add their layers to it.

Every model takes the input `pair` (None, 2, 14, 14) in raw pixel units (normalisation is its
first layer) and returns a dict: `compare` (None, 1), the probability that digit1 <= digit2,
and for the weight-sharing models `digit1` and `digit2` (None, 10), class probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import keras

from keras_models.data.contract import PAIR_SHAPE
from keras_models.models.layers import BatchToDigits, DigitsToBatch, ExpectedLeq, MeanOverViews, ShiftedViews
from keras_models.models.normalization import BackgroundTranslation, PixelNormalization
from keras_models.models.spec import ModelSpec

AUX_LOSS_WEIGHTS = {"compare": 0.6, "digit1": 0.2, "digit2": 0.2}
# The weight-sharing models without aux still report digit accuracy, but learn from compare only.
SHARED_LOSS_WEIGHTS = {"compare": 1.0, "digit1": 0.0, "digit2": 0.0}
# The training-only layers that `augmentation` adds on the 2N digits, in their order.
AUGMENTATION_LAYERS = ("augment_shift", "augment_rotate")
# Test-time augmentation (`tta`), fixed before it was first scored: each pair also seen moved
# one pixel up, down, left and right (the training shifts reach 2 px).
NO_TTA = ((0, 0),)
TTA_VIEWS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


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


def build_classifier(spec: ModelSpec, sync_bn: bool = False) -> keras.Model:
    """The digit classifier shared by both digits: (14, 14, 1) -> 10 logits, the layers of the
    spec's body."""
    image = keras.Input(shape=(14, 14, 1), name="digit")
    x = spec.body.classifier(image, spec, sync_bn)
    logits = keras.layers.Dense(10, name="logits", **spec.body.init(x.shape[-1]))(x)
    return keras.Model(image, logits, name="classifier")


def augmentation(digits, spec: ModelSpec, mean: float, variance: float):
    """--augment: random shifts and rotations of each training digit, active in training only;
    an image moved in is filled with the normalised background, what a black pixel becomes."""
    background = -mean / max(variance, 1e-12) ** 0.5
    if spec.augment and spec.shift:
        digits = BackgroundTranslation(spec.shift / 14, spec.shift / 14, background, name="augment_shift")(digits)
    if spec.augment and spec.rotation:
        digits = keras.layers.RandomRotation(
            spec.rotation / 360, fill_mode="constant", fill_value=background, name="augment_rotate"
        )(digits)
    return digits


def comparer(digit1, digit2, handed, spec: ModelSpec, logit_hook=None):
    """P(digit1 <= digit2): parameter-free (`expected`) from the two digit distributions, or
    learned from what the classifier hands it (`handed`: the two distributions, or the two
    logits, or the values of the softmax over the batch). `logit_hook`: layers on the learned
    comparer's logit, before its sigmoid (a lever's, training.levers)."""
    if spec.comparer_type == "expected":
        return ExpectedLeq(name="compare")([digit1, digit2])
    name = "digit_probabilities" if handed[0] is digit1 else "comparer_input"
    h = keras.layers.Concatenate(name=name)(list(handed))
    init = spec.body.init
    for i, units in enumerate(spec.comparer, 1):
        h = keras.layers.Dense(units, activation="relu", name=f"comparer_dense{i}", **init(h.shape[-1]))(h)
    if logit_hook is None:
        return keras.layers.Dense(1, activation="sigmoid", name="compare", **init(h.shape[-1]))(h)
    logit = logit_hook(keras.layers.Dense(1, name="compare_logit", **init(h.shape[-1]))(h))
    return keras.layers.Activation("sigmoid", name="compare")(logit)


@dataclass(frozen=True)
class BuildHooks:
    """Layers that training adds to the graph of `build_model` (training.levers): `digits(x)` on
    the 2N digits the shared classifier sees, after the spec's augmentation; `logits(x, digits)`
    on the classifier's logits, before their softmax; `compare_logit(x)` on the learned
    comparer's logit, before its sigmoid."""

    digits: Callable | None = None
    logits: Callable | None = None
    compare_logit: Callable | None = None


def build_model(
    spec: ModelSpec, mean: float = 0.0, variance: float = 1.0, sync_bn: bool = False, hooks: BuildHooks | None = None
) -> keras.Model:
    """The model of `spec`. `mean`/`variance`: pixel statistics of the training pairs, baked
    into the model.

        >>> model = build_model(ModelSpec(model="cnn_aux"), mean=33.0, variance=80.0**2)
        >>> model(pairs)["compare"]  # P(digit1 <= digit2); also "digit1", "digit2"

    `sync_bn`: batch statistics over the global batch when training on several replicas, so
    that every replica keeps the same moving statistics and a replicated run computes what
    one device with the global batch would. `hooks`: layers a round's levers add (BuildHooks)."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"build_model takes a ModelSpec (a Config's .spec), not {type(spec).__name__}")
    arch, hooks = spec.arch, hooks or BuildHooks()
    pair = keras.Input(shape=PAIR_SHAPE, name="pair")
    x = PixelNormalization(mean, variance, name="normalize")(pair)

    # `spec.precision` reaches the layers that carry the arithmetic; the normalisation, the
    # augmentation, the comparer and the outputs stay float32, so that every model answers
    # float32 probabilities and its losses are computed in float32.
    if not arch.shared:
        with dtype_policy(spec.precision):
            h = spec.body.plain(x, spec, sync_bn)
        compare = keras.layers.Dense(1, activation="sigmoid", name="compare", **spec.body.init(h.shape[-1]))(h)
        return keras.Model(pair, {"compare": compare}, name=spec.model)

    with dtype_policy(spec.precision):
        classifier = build_classifier(spec, sync_bn)
    digits = DigitsToBatch(name="digits_to_batch")(x)
    digits = augmentation(digits, spec, mean, variance)
    if hooks.digits is not None:
        digits = hooks.digits(digits)
    logits = classifier(digits)
    if hooks.logits is not None:
        logits = hooks.logits(logits, digits)
    logits1, logits2 = BatchToDigits(name="batch_to_digits")(logits)
    if spec.classifier_softmax == "batch":
        # One version of the authors' CNN classifier: softmax over dimension 0, each class
        # normalised across the batch's digits. The comparer reads these values, and the digit
        # losses take them as logits, as their cross-entropy did.
        logits1 = keras.layers.Softmax(axis=0, name="digit1_over_batch")(logits1)
        logits2 = keras.layers.Softmax(axis=0, name="digit2_over_batch")(logits2)
    digit1 = keras.layers.Softmax(name="digit1")(logits1)
    digit2 = keras.layers.Softmax(name="digit2")(logits2)
    reads_logits = spec.body.comparer_reads == "logits" or spec.classifier_softmax == "batch"
    handed = (logits1, logits2) if reads_logits else (digit1, digit2)
    compare = comparer(digit1, digit2, handed, spec, hooks.compare_logit)
    return keras.Model(pair, {"compare": compare, "digit1": digit1, "digit2": digit2}, name=spec.model)


def over_batch(model: keras.Model) -> bool:
    """Whether `model` (or a model inside it) has a softmax over the batch axis, so that its
    answer to a pair depends on the pairs beside it (--classifier-softmax batch)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model) and over_batch(layer):
            return True
        if isinstance(layer, keras.layers.Softmax) and layer.axis == 0:
            return True
    return False


def ensemble_model(members: list[keras.Model], views=NO_TTA, name: str = "ensemble") -> keras.Model:
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


def loss_weights(spec: ModelSpec) -> dict:
    """The weight of each output's loss: the architecture's (aux 0.6 / 0.2 / 0.2)."""
    if not spec.arch.shared:
        return {"compare": 1.0}
    return dict(AUX_LOSS_WEIGHTS if spec.arch.aux else SHARED_LOSS_WEIGHTS)


def targets_for(model: keras.Model, pairs) -> dict:
    """The pairs' targets, restricted to the model's outputs."""
    return pairs.targets(model.output.keys() if isinstance(model.output, dict) else ["compare"])
