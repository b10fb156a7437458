"""A loaded export: one version, loaded by one of the runtimes (runtimes.py), checked against
the pair contract, with its model card. `Predictor` (keras_models.api) answers through it, and
the server (kserve_model) serves one at a time, so both read the same outputs and pixel range in
the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from keras_models.core.errors import ModelFileError
from keras_models.data.contract import TRAINING_PIXEL_RANGE
from keras_models.serving.export import read_metadata, versions
from keras_models.serving.runtimes import RUNTIMES


@dataclass(frozen=True)
class LoadedExport:
    path: Path  # the version folder
    runtime: object  # the runtimes.RUNTIMES entry that loaded it
    handle: object = field(repr=False)  # what the runtime runs: (SavedModel, its signature), or an ONNX session
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
        """The outputs for checked `pairs`, as numpy arrays."""
        return self.runtime.run(self.handle, pairs)


def load_export(path: str | Path, on_skip=None, runtime: str = "tensorflow") -> LoadedExport:
    """A version folder, or a base path's highest version that loads, as the server serves it:
    a newer version that does not load (empty, half-written, broken) is skipped, and
    `on_skip(message)` hears of it. Checked: the model takes `pair` float32 (None, 2, 14, 14)
    and answers `compare`. `runtime`: a name of runtimes.RUNTIMES."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such folder (give an export, such as saved_models/cnn_aux)")
    if (path / "saved_model.pb").is_file() or not versions(path):
        return load_version(path, runtime)
    for version in reversed(versions(path)):
        try:
            return load_version(path / str(version), runtime)
        except ModelFileError as e:
            if on_skip is not None:
                on_skip(f"skipping version {version}: {e}")
    raise ModelFileError(f"{path}: none of its versions ({', '.join(map(str, versions(path)))}) loads")


def load_version(path: Path, runtime: str = "tensorflow") -> LoadedExport:
    """One version folder, loaded by `runtime` and checked against the contract."""
    chosen = RUNTIMES[runtime]
    handle, outputs = chosen.load(path)
    if "compare" not in outputs:
        raise ModelFileError(f"{path}: the model has no `compare` output")
    return LoadedExport(path, chosen, handle, outputs, read_metadata(path))
