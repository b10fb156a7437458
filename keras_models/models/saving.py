"""A Keras model saved and loaded, side by side: `atomic_save_model` writes a `.keras` file
beside its target and renames it into place, and `load_keras_model` reads one back with
`safe_mode=True`, the project's layers registered first. Training saves its rounds and resumes
from them, and serving exports them, through this one module.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from keras_models.core.errors import ModelFileError


def atomic_save_model(model, path: str | Path) -> None:
    """`model.save` to a temporary name in the same folder, then rename into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_keras_model(path: str | Path):
    """A `.keras` file loaded with safe_mode=True, the project's layers registered first;
    anything else is one clear line.

        >>> model = load_keras_model("runs/cnn_aux-20261201-101500/model.keras")
    """
    import keras

    from keras_models.models import layers  # noqa: F401  (registers the custom layers before deserialising)

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a Keras model file (.keras is a zip archive)")
    lambdas = lambda_layers(path)
    if lambdas:
        raise ModelFileError(
            f"{path}: holds Lambda layers ({', '.join(lambdas[:3])}), whose Python code loading with "
            "safe_mode=True refuses to run; the project's models use registered layers instead"
        )
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as e:  # Keras raises many types for a bad archive; the user needs one line
        raise ModelFileError(
            f"{path}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from None


def lambda_layers(path: Path) -> list[str]:
    """The names of the Lambda layers in a .keras file's config.json (nothing is deserialised)."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return []  # Keras' loader says what is wrong with it
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                found.append(str((node.get("config") or {}).get("name", "?")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found
