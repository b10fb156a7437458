"""`ModelSpec`: what the builder reads (keras_models.models.builder), saved beside every model and
in every export. Training's settings are apart from it (keras_models.training.settings)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from keras_models.core.errors import ConfigError
from keras_models.core.fields import check_fields, setting
from keras_models.models import architectures
from keras_models.models.architectures import NAMES as ARCHITECTURES
from keras_models.models.architectures import family_defaults

# The augmentation's largest shift and rotation: half the 14-px image moves a digit out of it.
MAX_SHIFT = 6
MAX_ROTATION = 180.0


@dataclass(frozen=True)
class ModelSpec:
    def __post_init__(self):
        check_fields(self)
        body = self.arch.network(self.network)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        unread = [name for name in body.fixed if getattr(self, name) != defaults[name]]
        if unread:
            flags = ", ".join("--" + name.replace("_", "-") for name in unread)
            raise ConfigError(f"the report's network of {self.model} is fixed layer by layer; it does not read {flags}")
        if self.classifier_softmax == "batch" and not (
            self.arch.shared and body.comparer_reads == "probabilities" and self.comparer_type == "learned"
        ):
            raise ConfigError(
                "--classifier-softmax batch reproduces the softmax that hands the digit classifier's output to a "
                "learned comparer; it needs a weight-sharing model whose comparer reads probabilities (cnn_cc, "
                "cnn_aux)"
            )

    model: str = setting("cc_aux", "the architecture", choices=ARCHITECTURES)
    network: str = setting(
        "project",
        "project: the architecture's own layers; report: the network the report's authors built, layer by layer "
        "(--recipe report sets it)",
        choices=("project", "report"),
    )
    hidden: tuple[int, ...] | None = setting(
        None,
        "dense widths: the MLP's hidden layers, or the CNN's dense head",
        default_text=f"the network's: the project's {family_defaults(lambda a: a.hidden)}; the report's "
        f"{family_defaults(lambda a: a.report_body.hidden)}",
    )
    comparer: tuple[int, ...] = setting((80, 80, 20), "comparer widths of the weight-sharing models")
    filters: tuple[int, ...] = setting((32, 64), "filters per conv block (each: --convs x conv3x3-BN-ReLU, maxpool2)")
    convs: int = setting(2, "conv layers per conv block", min=1, max=4)
    dropout: float = setting(0.5, "dropout rate after each dense layer; 0 leaves it out", min=0.0, below=1.0)
    batch_norm: bool = setting(True, "batch normalisation after each conv and dense layer")
    comparer_type: str = setting(
        "learned",
        "learned: dense comparer; expected: sum over i <= j of p1(i) p2(j), no weights",
        choices=("learned", "expected"),
    )
    augment: bool = setting(
        False, "random shifts (<= --shift px) and rotations (<= --rotation degrees) of each training digit"
    )
    shift: int = setting(2, "largest shift of --augment, in pixels; 0: none", min=0, max=MAX_SHIFT)
    rotation: float = setting(10.0, "largest rotation of --augment, in degrees; 0: none", min=0.0, max=MAX_ROTATION)
    precision: str = setting(
        "float32",
        "the digit classifier's arithmetic (the plain models': their body); mixed_bfloat16: "
        "bfloat16 with float32 weights (Keras mixed precision), for CPUs with AMX or AVX-512 BF16 "
        "under oneDNN; slower where bfloat16 is emulated (Eigen's kernels, other CPUs)",
        choices=("float32", "mixed_bfloat16"),
    )
    classifier_softmax: str = setting(
        "classes",
        "the softmax between the digit classifier and the comparer: over the 10 classes, or over the batch as "
        "one version of the authors' CNN classifier had it (each class normalised across the batch's pairs, "
        "so a pair's answer depends on its batch-mates: such a model is never exported)",
        choices=("classes", "batch"),
    )

    @property
    def arch(self):
        return architectures.get(self.model)

    @property
    def family(self) -> str:
        return self.arch.family

    @property
    def body(self):
        """The body of the chosen network (keras_models.models.bodies.Body)."""
        return self.arch.network(self.network)

    @property
    def hidden_units(self) -> tuple[int, ...]:
        if self.hidden is not None:
            return self.hidden
        return self.body.hidden if self.network == "report" else self.arch.hidden
