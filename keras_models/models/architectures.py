"""The architectures, declared once. Each entry states its traits; the builder, the recipes, the
tuner, the export check and the study read them here, and nothing is inferred from a name.

    mlp      flattened pair (392) -> dense layers -> compare
    cnn      pair as a 2-channel image -> conv blocks -> dense head -> compare
    cc       one MLP digit classifier on both digits -> comparer -> compare (+ digit1, digit2)
    cnn_cc   the same with the CNN digit classifier
    cc_aux / cnn_aux   cc / cnn_cc trained with auxiliary digit losses (0.6 / 0.2 / 0.2)

Each of the six has two networks: the project's own (`body`), and the one the report's authors
built (`report_body`, keras_models.models.report_bodies), which the spec's `network` chooses
(`--recipe report` sets it). `register` adds one more architecture (a variant with other
defaults, say); it trains, exports, serves and tunes like the report's six, and the study's
Table I keeps to those six.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from keras_models.core.errors import ConfigError
from keras_models.models.bodies import ConvBody, DenseBody
from keras_models.models.report_bodies import ReportConvBody, ReportDenseBody


@dataclass(frozen=True)
class TableRow:
    """A row of the report's Table I: parameters as PyTorch counts them (batch-norm layers built
    and never called included), train and test accuracy (%), mean and std over 10 rounds."""

    params: int
    train: float
    train_std: float
    test: float
    test_std: float


@dataclass(frozen=True)
class Architecture:
    """One architecture's traits. A variant of the report's cnn_aux, say:

    >>> register(Architecture("cnn_aux_wide", body=ConvBody(), shared=True, aux=True, hidden=(512,), epochs=100))
    """

    name: str
    body: object  # the layers of the network, and of its digit classifier (keras_models.models.bodies.Body)
    shared: bool  # one digit classifier applied to both digits, with outputs digit1 and digit2
    aux: bool  # the digit losses are auxiliary losses (0.2 each beside compare's 0.6)
    hidden: tuple[int, ...]  # dense widths unless --hidden says otherwise
    epochs: int  # epochs per round unless --epochs or a recipe says otherwise
    report: TableRow | None = None  # its row of the report's Table I; None: not in it
    description: str = ""
    report_body: object | None = None  # the report authors' network (`--network report`); None: it has none

    def __post_init__(self):
        for body in filter(None, (self.body, self.report_body)):
            if not all(callable(getattr(body, m, None)) for m in ("plain", "classifier", "init")):
                raise ConfigError(f"architecture {self.name!r}: its body needs plain(), classifier() and init()")
        if self.aux and not self.shared:
            raise ConfigError(f"architecture {self.name!r}: auxiliary digit losses need the shared classifier")

    @property
    def family(self) -> str:
        """Its body's name, "mlp" or "cnn" for the report's six: what recipes and the tuner key on."""
        return self.body.name

    def network(self, name: str):
        """The body of the network `name`: "project" (its own) or "report" (the authors')."""
        if name == "report":
            if self.report_body is None:
                raise ConfigError(f"architecture {self.name!r} has no report network; use --network project")
            return self.report_body
        return self.body

    @property
    def outputs(self) -> tuple[str, ...]:
        return ("compare", "digit1", "digit2") if self.shared else ("compare",)


_REGISTRY: dict[str, Architecture] = {}
NAMES = _REGISTRY.keys()  # a live view: argparse's choices and the settings' checks see what is registered


def register(arch: Architecture) -> Architecture:
    """Adds `arch` to this process's registry: `Config(model=arch.name)` then takes it. Other
    processes (the commands, a server's workers) know it when a module that registers it is
    named in the environment variable KERAS_MODELS_ARCHITECTURES (comma-separated), which the
    registry imports when it is first imported.

    >>> register(Architecture("cc_aux_narrow", body=DenseBody(), shared=True, aux=True, hidden=(128, 128), epochs=200))
    """
    if arch.name in _REGISTRY:
        raise ConfigError(f"architecture {arch.name!r} is registered already")
    _REGISTRY[arch.name] = arch
    return arch


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> Architecture:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def report_architectures() -> list[Architecture]:
    """The report's six, in Table I's order."""
    return [a for a in _REGISTRY.values() if a.report is not None]


# Per body: the dense widths of the report's models, and the epochs a round trains when neither
# --epochs nor a recipe sets them (the report recipe's own epochs are in training.recipes).
_MLP = {"body": DenseBody(), "hidden": (500, 500), "epochs": 200, "report_body": ReportDenseBody()}
_CNN = {"body": ConvBody(), "hidden": (256,), "epochs": 100, "report_body": ReportConvBody()}
# name, shared, aux, its row of Table I, the family's settings, what it is.
for _name, _shared, _aux, _row, _family, _description in (
    ("mlp", False, False, TableRow(547_787, 99.70, 0.22, 81.04, 0.14), _MLP, "dense layers"),
    ("cc", True, False, TableRow(461_741, 98.91, 0.22, 84.62, 0.12), _MLP, "shared MLP classifier"),
    ("cc_aux", True, True, TableRow(461_741, 99.06, 0.25, 93.04, 0.11), _MLP, "cc with digit losses"),
    ("cnn", False, False, TableRow(274_273, 99.68, 0.17, 81.65, 0.12), _CNN, "conv blocks"),
    ("cnn_cc", True, False, TableRow(285_453, 98.16, 0.04, 84.53, 0.25), _CNN, "shared CNN classifier"),
    ("cnn_aux", True, True, TableRow(285_453, 99.58, 0.25, 98.00, 0.11), _CNN, "cnn_cc with digit losses"),
):
    register(Architecture(_name, shared=_shared, aux=_aux, report=_row, description=_description, **_family))


# Architectures registered elsewhere, for every process of this environment (see `register`).
PLUGINS = "KERAS_MODELS_ARCHITECTURES"
for _module in filter(None, (m.strip() for m in os.environ.get(PLUGINS, "").split(","))):
    try:
        importlib.import_module(_module)
    except ImportError as e:
        # At import, before any command can catch an error: one line and a non-zero exit.
        raise SystemExit(f"keras_models: {PLUGINS} names {_module!r}, which cannot be imported ({e})") from None


def family_defaults(trait) -> str:
    """What `trait(arch)` gives the report's six, by family, in words: "500,500 for the MLP
    family, 256 for the CNN family". The settings' help reads its defaults here, where they are
    declared, instead of restating them."""
    seen = {}
    for arch in report_architectures():
        seen.setdefault(arch.family, trait(arch))
    words = (",".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in seen.values())
    return ", ".join(f"{w} for the {family.upper()} family" for w, family in zip(words, seen, strict=True))
