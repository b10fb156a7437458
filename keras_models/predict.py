"""Answers of an exported SavedModel for pairs given as an array file or as two images."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import DataError
from .config import PAIR_SHAPE


def load_pairs_array(path: str | Path) -> np.ndarray:
    """(N, 2, 14, 14) float32 from a .npy, or from the `pair` (or only) array of a .npz."""
    path = Path(path)
    check_file(path)
    if path.suffix.lower() not in (".npy", ".npz"):
        raise DataError(f"{path}: one input must be a .npy or .npz array of pairs; give two image files for one pair")
    try:
        arr = np.load(path, allow_pickle=False)
        if isinstance(arr, np.lib.npyio.NpzFile):
            with arr:
                keys = list(arr.keys())
                key = "pair" if "pair" in keys else (keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise DataError(f"{path}: holds {keys}; name the pairs array 'pair'")
                arr = arr[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npy/.npz array ({str(e).splitlines()[0]})") from None
    return check_pairs(arr, str(path))


def check_file(path: Path) -> None:
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give a .npy/.npz array file or two image files")
    if not path.is_file():
        raise DataError(f"{path}: no such file")


def check_pairs(arr, where: str = "input") -> np.ndarray:
    """The serving contract, checked before the model sees anything."""
    arr = np.asarray(arr)
    if arr.ndim != 4 or arr.shape[1:] != PAIR_SHAPE:
        raise DataError(f"{where}: pairs must have shape (N, 2, 14, 14), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{where}: pairs must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise DataError(f"{where}: pairs hold NaN or infinite pixels")
    return arr


def load_image(path: str | Path, invert: bool = False) -> np.ndarray:
    """Any size, grayscale or RGB -> (14, 14) float32: resized to 28x28 and pooled, as MNIST.
    MNIST digits are white on black; `invert` takes black-on-white images."""
    from PIL import Image, UnidentifiedImageError

    from .data import pool

    path = Path(path)
    check_file(path)
    try:
        with Image.open(path) as img:
            img = img.convert("L").resize((28, 28), Image.Resampling.LANCZOS)
            pixels = np.asarray(img, dtype=np.float32)
    except Image.DecompressionBombError as e:
        raise DataError(f"{path}: refused, too many pixels for a digit ({str(e).splitlines()[0]})") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{path}: cannot decode the image ({str(e).splitlines()[0]})") from None
    if invert:
        pixels = 255.0 - pixels
    return pool(pixels[None])[0]


def pair_from_images(first, second, invert: bool = False) -> np.ndarray:
    return np.stack([load_image(first, invert), load_image(second, invert)])[None]


def answers(signature, pairs: np.ndarray, batch_size: int = 1000) -> list[dict]:
    import tensorflow as tf

    rows = []
    for start in range(0, len(pairs), batch_size):
        out = {k: v.numpy() for k, v in signature(pair=tf.constant(pairs[start:start + batch_size])).items()}
        for i in range(len(out["compare"])):
            p = float(np.ravel(out["compare"][i])[0])
            row = {"compare": round(p, 6), "leq": p >= 0.5}
            for name in ("digit1", "digit2"):
                if name in out:
                    row[name] = int(np.argmax(out[name][i]))
            rows.append(row)
    return rows
