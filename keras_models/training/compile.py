"""Compilation: the losses keyed by output name with their weights, the metrics, and the
optimizer and schedule of a `Recipe`."""

from __future__ import annotations

import keras

from keras_models.models.layers import OneCycle, SmoothedSparseCrossentropy
from keras_models.training.settings import Recipe


def learning_rate(recipe: Recipe, epochs: int, steps_per_epoch: int):
    if recipe.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(recipe.lr, decay_steps=epochs * steps_per_epoch)
    if recipe.lr_schedule == "onecycle":
        return OneCycle(recipe.lr, steps=epochs * steps_per_epoch)
    return recipe.lr


def digit_loss(recipe: Recipe, name: str) -> keras.losses.Loss:
    if recipe.label_smoothing:
        return SmoothedSparseCrossentropy(recipe.label_smoothing, name=name)
    return keras.losses.SparseCategoricalCrossentropy(name=name)


def output_objective(recipe: Recipe, output: str, key: str):
    """Output `output`'s loss, named `<key>_loss`, and its accuracy metric's class: binary for
    `compare`, sparse categorical for the digit outputs. `key`: what the compiled model calls
    the output (a stacked model's `digit1_2` for round 2's `digit1`)."""
    if output == "compare":
        return keras.losses.BinaryCrossentropy(name=f"{key}_loss"), keras.metrics.BinaryAccuracy
    return digit_loss(recipe, f"{key}_loss"), keras.metrics.SparseCategoricalAccuracy


def optimizer(recipe: Recipe, epochs: int, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam or Nesterov SGD on the recipe's schedule."""
    lr = learning_rate(recipe, epochs, steps_per_epoch)
    if recipe.optimizer == "nesterov":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    return keras.optimizers.Adam(lr)


def compile_model(
    model: keras.Model,
    recipe: Recipe,
    *,
    loss_weights: dict,
    epochs: int,
    steps_per_epoch: int = 10,
    steps_per_execution: int = 1,
    outputs: dict[str, str] | None = None,
    optimizer_hook=None,
) -> keras.Model:
    """The losses keyed by output name, their `loss_weights` (models.builder.loss_weights of the
    spec), metrics and the optimizer of `recipe`, its schedule spanning `epochs`. `outputs`: what
    each of the model's outputs is, by the name the model gives it ({"digit1_2": "digit1"} for
    round 2's digit1 in a stack of rounds); by default each output is itself. `optimizer_hook`:
    what a round's levers make of the optimizer (training.levers).

        >>> cfg = Config(model="cnn_aux", lr=1e-3)
        >>> compile_model(build_model(cfg.spec), cfg.recipe, loss_weights=loss_weights(cfg.spec), epochs=10)
    """
    names = list(model.output.keys()) if isinstance(model.output, dict) else ["compare"]
    outputs = outputs or {name: name for name in names}
    # Keras prefixes metric names with the output name only when there are several outputs;
    # naming it here gives every model the same `compare_accuracy` (and `val_compare_accuracy`).
    compare_metric = "accuracy" if len(names) > 1 else "compare_accuracy"
    losses, metrics, weights = {}, {}, {}
    for key in names:
        losses[key], metric = output_objective(recipe, outputs[key], key)
        metrics[key] = [metric(name=compare_metric if key == "compare" else "accuracy")]
        if outputs[key] in loss_weights:
            weights[key] = loss_weights[outputs[key]]
    opt = optimizer(recipe, epochs, steps_per_epoch)
    model.compile(
        optimizer=opt if optimizer_hook is None else optimizer_hook(opt),
        loss=losses,
        loss_weights=weights,
        metrics=metrics,
        jit_compile=recipe.jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def compile_for(
    model: keras.Model,
    cfg,
    steps_per_epoch: int = 10,
    replicated: bool = False,
    outputs: dict[str, str] | None = None,
    levers=(),
) -> keras.Model:
    """`compile_model` with what a run's Config says: its recipe, its spec's loss weights, its
    epochs and steps per execution, and what its `levers` make of the loss weights and the
    optimizer. `replicated`: under a strategy with several replicas, where Keras 3 cannot run
    several steps per execution (keras-team/keras#19246: "You must feed a value for placeholder
    tensor" from the multi-step loop), one step per execution is used."""
    from keras_models.models.builder import loss_weights
    from keras_models.training.levers import chained

    weights, hook = loss_weights(cfg.spec), chained(levers, "loss_weights")
    return compile_model(
        model,
        cfg.recipe,
        loss_weights=weights if hook is None else hook(weights),
        epochs=cfg.num_epochs,
        steps_per_epoch=steps_per_epoch,
        steps_per_execution=1 if replicated else cfg.run.steps_per_execution,
        outputs=outputs,
        optimizer_hook=chained(levers, "optimizer"),
    )
