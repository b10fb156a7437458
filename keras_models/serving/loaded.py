"""A loaded export: one version of a SavedModel, checked against the pair contract, with its model
card. `Predictor` (keras_models.api) answers through it, and the server (kserve_model) serves one
at a time, so both read the same signature, outputs and pixel range in the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from keras_models.core.errors import ModelFileError
from keras_models.data.contract import PAIR_SHAPE, SHAPE_TEXT, TRAINING_PIXEL_RANGE
from keras_models.serving.export import load_saved_model, read_metadata, run_signature, versions


@dataclass(frozen=True)
class LoadedExport:
    path: Path  # the version folder
    signature: object  # the concrete function of serving_default
    loaded: object = field(repr=False)  # keeps the SavedModel (and so the signature's variables) alive
    outputs: tuple[str, ...]
    card: dict  # metadata.json ({} for an export without one)

    @property
    def version(self) -> int | None:
        return int(self.path.name) if self.path.name.isdigit() else None

    @property
    def pixel_range(self) -> tuple[float, float]:
        """The training pairs' pixel range, from the card; MNIST's 0-255 for an export without one."""
        return tuple(self.card.get("pixel_range", TRAINING_PIXEL_RANGE))

    def run(self, pairs) -> dict:
        """The signature's outputs for checked `pairs`, as numpy arrays."""
        return run_signature(self.signature, pairs)


def load_export(path: str | Path, on_skip=None) -> LoadedExport:
    """A version folder, or a base path's highest version that loads, as the server serves it:
    a newer version that does not load (empty, half-written, broken) is skipped, and
    `on_skip(message)` hears of it. Checked: serving_default takes `pair` float32
    (None, 2, 14, 14) and answers `compare`."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such folder (give an export, such as saved_models/cnn_aux)")
    if (path / "saved_model.pb").is_file() or not versions(path):
        return load_version(path)
    for version in reversed(versions(path)):
        try:
            return load_version(path / str(version))
        except ModelFileError as e:
            if on_skip is not None:
                on_skip(f"skipping version {version}: {e}")
    raise ModelFileError(f"{path}: none of its versions ({', '.join(map(str, versions(path)))}) loads")


def load_version(path: Path) -> LoadedExport:
    """One version folder, checked against the contract."""
    import tensorflow as tf

    loaded, signature = load_saved_model(path)
    _, inputs = signature.structured_input_signature
    spec = inputs.get("pair")
    if spec is None or spec.dtype != tf.float32 or tuple(spec.shape) != (None, *PAIR_SHAPE):
        raise ModelFileError(f"{path}: serving_default does not take pair float32 {SHAPE_TEXT} (it takes {inputs})")
    outputs = tuple(sorted(signature.structured_outputs))
    if "compare" not in outputs:
        raise ModelFileError(f"{path}: serving_default has no `compare` output")
    return LoadedExport(path, signature, loaded, outputs, read_metadata(path))
