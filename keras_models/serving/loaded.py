"""A loaded export: one version, loaded by one of the runtimes (runtimes.py), checked against
the pair contract, with its model card. `Predictor` (keras_models.api) answers through it, and
the server (kserve_model) serves one at a time, so both read the same outputs and pixel range in
the same way, and both choose a version with `newest_loadable`.

A version loads only when all of it does: its model, a model card that is a JSON object with a
pixel range of two finite numbers (or no card at all), and an answer to a probe pair that has
the contract's outputs, finite and in [0, 1]."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_models.core.errors import ModelFileError
from keras_models.data.contract import OUTPUT_SHAPES, TRAINING_PIXEL_RANGE
from keras_models.serving.export import METADATA, read_metadata, versions
from keras_models.serving.runtimes import RUNTIMES


@dataclass(frozen=True)
class LoadedExport:
    path: Path  # the version folder
    runtime: object  # the runtimes.RUNTIMES entry that loaded it
    handle: object = field(repr=False)  # what the runtime runs: (SavedModel, its signature), or an ONNX session
    outputs: tuple[str, ...]
    card: dict  # metadata.json ({} for an export without one), checked by `check_card`

    @property
    def version(self) -> int | None:
        return int(self.path.name) if self.path.name.isdigit() else None

    @property
    def pixel_range(self) -> tuple[float, float]:
        """The training pairs' pixel range, from the card; MNIST's 0-255 for an export without one."""
        return tuple(self.card.get("pixel_range", TRAINING_PIXEL_RANGE))

    def run(self, pairs) -> dict:
        """The outputs for checked `pairs`, as numpy arrays."""
        return self.runtime.run(self.handle, pairs)


def load_export(path: str | Path, on_skip=None, runtime: str = "tensorflow") -> LoadedExport:
    """A version folder, or a base path's newest version that loads (`newest_loadable`), as the
    server serves it; `on_skip(message)` hears of each newer version skipped. `runtime`: a name
    of runtimes.RUNTIMES."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such folder (give an export, such as saved_models/cnn_aux)")
    if path.is_file():
        raise ModelFileError(f"{path}: a file; give an export's folder, such as saved_models/cnn_aux")
    if (path / "saved_model.pb").is_file() or not versions(path):
        return load_version(path, runtime)
    told = None if on_skip is None else lambda version, message: on_skip(f"skipping version {version}: {message}")
    found = newest_loadable(path, runtime, on_skip=told)
    if found is None:
        raise ModelFileError(f"{path}: none of its versions ({', '.join(map(str, versions(path)))}) loads")
    return found


def newest_loadable(base: Path, runtime: str, above: int | None = None, on_skip=None) -> LoadedExport | None:
    """The highest version under `base` (above `above`, if given) that loads, or None: one that
    does not load (empty, half-written, broken, a wrong card) is skipped, and `on_skip(version,
    message)` hears of it."""
    for version in reversed(versions(base)):
        if above is not None and version <= above:
            return None
        try:
            return load_version(base / str(version), runtime)
        except ModelFileError as e:
            if on_skip is not None:
                on_skip(version, str(e))
    return None


def load_version(path: str | Path, runtime: str = "tensorflow") -> LoadedExport:
    """One version folder, loaded by `runtime`, its card checked, and its answer to a probe pair
    checked against the contract."""
    path, chosen = Path(path), RUNTIMES[runtime]
    card = check_card(path)
    handle, outputs = chosen.load(path)
    if "compare" not in outputs:
        raise ModelFileError(f"{path}: the model has no `compare` output")
    loaded = LoadedExport(path, chosen, handle, outputs, card)
    probe(loaded)
    return loaded


def check_card(path: Path) -> dict:
    """The version's metadata.json as a model card ({} without one), or a ModelFileError."""
    if (path / METADATA).is_file():
        card = read_metadata(path)
        if not isinstance(card, dict) or not card:
            raise ModelFileError(f"{path / METADATA}: not a model card (a JSON object)")
        if "pixel_range" in card:
            low_high = card["pixel_range"]
            ok = (
                isinstance(low_high, list)
                and len(low_high) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in low_high)
                and low_high[0] < low_high[1]
            )
            if not ok:
                raise ModelFileError(f"{path / METADATA}: its pixel_range is not [low, high], got {low_high!r}")
        return card
    return {}


def probe(loaded: LoadedExport) -> None:
    """A blank pair through the loaded model: every output there, of its shape, finite and in
    [0, 1]; a version that cannot answer it is not served."""
    low = loaded.pixel_range[0]
    try:
        out = loaded.run(np.full((1, 2, 14, 14), low, np.float32))
    except Exception as e:  # a runtime's own error type, for a graph that cannot run
        raise ModelFileError(f"{loaded.path}: cannot answer a probe pair ({type(e).__name__})") from None
    for name in loaded.outputs:
        value = np.asarray(out.get(name))
        shape = OUTPUT_SHAPES.get(name)
        if shape is None or value.shape != (1, *shape) or not np.isfinite(value).all():
            raise ModelFileError(f"{loaded.path}: its output {name!r} to a probe pair is not finite of shape {shape}")
        if value.min() < 0 or value.max() > 1:
            raise ModelFileError(f"{loaded.path}: its output {name!r} to a probe pair is not a probability")
