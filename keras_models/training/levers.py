"""The one seam through which training takes a change that is not a setting: a `Lever`.

The study's levers (experiments/levers.py: weight decay, a moving average of the weights,
re-paired batches, elastic distortions, learned loss weights, distillation from teachers, a
classifier pre-trained on other digits) and a user's own are Levers handed to
`km.train(cfg, levers=[...])`. Each hook's default changes nothing; a lever overrides the ones
it needs, with Keras' own means (layers, callbacks, an optimizer, a tf.data pipeline):

    digits(x)            training-only layers on the 2N digits the shared classifier sees
    logits(digits, x)    layers on the classifier's logits, before their softmax
    compare_logit(x)     layers on the learned comparer's logit, before its sigmoid
    loss_weights(w)      the outputs' loss weights
    optimizer(opt)       the optimizer, before the model is compiled with it
    dataset(...)         the training pipeline, in place of the project's
    before_fit(fit)      work before the round's model is fitted (its teachers, say)
    callbacks(fit)       callbacks, run before the project's own
    kept(model, fit)     the model to evaluate, save and export

A round with levers traces its own step (no step is shared across rounds), a run records each
lever's `describe()` in results.json and resumes only with the same levers, and --stack refuses
them. A lever must pickle, to reach Ray's workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce


class Lever:
    """A change to how a round trains. Subclasses override the hooks they need; gradients
    clipped to a norm of 1, say, through the optimizer:

        >>> class ClipNorm(km.Lever):
        ...     def optimizer(self, optimizer):
        ...         optimizer.clipnorm = 1.0
        ...         return optimizer
        >>> km.train(km.Config(model="cnn_aux", epochs=3), levers=[ClipNorm()])
    """

    def describe(self) -> dict:
        """What results.json records of it: its class and public attributes."""
        return {"lever": type(self).__name__, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}

    def check(self, cfg, images) -> None:
        """Refuses, with a ConfigError, a run it cannot act on, before anything trains."""

    def digits(self, digits):
        return digits

    def logits(self, digits, logits):
        return logits

    def compare_logit(self, logit):
        return logit

    def loss_weights(self, weights: dict) -> dict:
        return weights

    def optimizer(self, optimizer):
        return optimizer

    def dataset(self, pairs, targets: dict, batch_size: int, seed: int):
        """A tf.data pipeline of the training pairs in place of the project's, or None."""
        return None

    def before_fit(self, fit) -> list[dict]:
        """Work before the round's model is fitted (a `LeverFit`); returns the parts it adds to
        the round's result, each a FitResult's dict (their seconds count in the round's)."""
        return []

    def callbacks(self, fit) -> list:
        return []

    def kept(self, model, fit):
        """The model to evaluate, save and export, from the one trained."""
        return model


@dataclass(frozen=True)
class LeverFit:
    """What a lever's round hooks see of the fit: the Config, the round's data (rounds.RoundData),
    the run's (train, test) images, the strategy, the pixel statistics of the training pairs, and
    the runner, whose `fit_kept(levers, seed, name, data)` fits and keeps another model of the
    round (a teacher) with other levers."""

    cfg: object
    data: object
    images: tuple
    strategy: object
    stats: tuple[float, float]
    runner: object


def chained(levers, hook: str):
    """The levers' `hook`s applied in their order, as one function `apply(value, *context)` that
    calls each as `hook(*context, value)`; None when no lever overrides it."""
    own = [getattr(lever, hook) for lever in levers if getattr(type(lever), hook) is not getattr(Lever, hook)]
    if not own:
        return None
    return lambda value, *context: reduce(lambda x, f: f(*context, x), own, value)


def describe(levers) -> list[dict]:
    return [lever.describe() for lever in levers]
