"""Answers of an exported SavedModel for pairs given as an array file or as two images."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from keras_models.core.errors import DataError
from keras_models.data.contract import check_pairs


def load_pairs_array(path: str | Path) -> np.ndarray:
    """(N, 2, 14, 14) float32 from a .npy, or from the `pair` (or only) array of a .npz, checked
    against the pair contract."""
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
    return check_pairs(arr, str(path), DataError)


def check_file(path: Path) -> None:
    if path.is_symlink() and not path.exists():
        try:
            path.resolve(strict=True)
        except FileNotFoundError:
            raise DataError(f"{path}: a symbolic link to {os.readlink(path)}, which does not exist") from None
        except (RuntimeError, OSError):  # Python 3.11 and 3.12 raise RuntimeError for a loop, later ones OSError
            raise DataError(f"{path}: a loop of symbolic links, which leads to no file") from None
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give a .npy/.npz array file or two image files")
    if not path.is_file():
        raise DataError(f"{path}: no such file")


def mnist_digit(pixels: np.ndarray, invert: bool | None = None, where: str = "image", on_blank=None) -> np.ndarray:
    """A grayscale image of one digit (any size, 0-255) -> 28x28 as MNIST made its digits:
    white on black, the ink cropped and scaled to fit 20x20 (aspect kept), then centred by its
    centre of mass. `invert` None: black-on-white is told from the border, which is background.
    An image without ink is a valid, blank digit: with `on_blank`, it is told that (one line)
    and the blank digit is returned; without, the image is refused."""
    from PIL import Image

    pixels = np.asarray(pixels, np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if invert if invert is not None else np.median(border) > 127:
        pixels, border = 255.0 - pixels, 255.0 - border
    pixels = np.clip(pixels - np.median(border), 0, None)  # a gray background becomes black
    if pixels.max() < 32:
        if on_blank is None:
            raise DataError(f"{where}: no ink, the image is blank (or its digit too faint)")
        on_blank(f"{where}: no ink, the image is blank (or its digit too faint); answered as a blank digit")
        return np.zeros((28, 28), np.float32)
    rows, cols = (
        np.flatnonzero((pixels > 0.2 * pixels.max()).any(1)),
        np.flatnonzero((pixels > 0.2 * pixels.max()).any(0)),
    )
    crop = pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = 20.0 / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    digit = np.asarray(Image.fromarray(crop * (255.0 / crop.max())).resize(size, Image.Resampling.LANCZOS))
    digit = np.clip(digit, 0, 255)
    ys, xs = np.indices(digit.shape)
    cy, cx = (ys * digit).sum() / digit.sum(), (xs * digit).sum() / digit.sum()
    top = int(np.clip(round(14 - cy), 0, 28 - digit.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - digit.shape[1]))
    canvas = np.zeros((28, 28), np.float32)
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return canvas


def load_image(path: str | Path, invert: bool | None = None, on_blank=None) -> np.ndarray:
    """Any size, grayscale or RGB, with or without transparency -> (14, 14) float32: MNIST's
    preprocessing (mnist_digit), then pooled as the pairs are."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    check_file(path)
    try:
        with Image.open(path) as img:
            pixels = np.asarray(flattened(img).convert("L"), dtype=np.float32)
    except Image.DecompressionBombError as e:
        raise DataError(f"{path}: refused, too many pixels for a digit ({str(e).splitlines()[0]})") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{path}: cannot decode the image ({str(e).splitlines()[0]})") from None
    return digit_from_pixels(pixels, invert, str(path), on_blank)


def flattened(img):
    """An image with transparency laid on white, as a viewer shows it: a black digit on a
    transparent background (its RGB zero where it is transparent) would otherwise read as all
    black, a blank image."""
    from PIL import Image

    if img.mode not in ("RGBA", "LA", "PA") and not (img.mode == "P" and "transparency" in img.info):
        return img
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def digit_from_pixels(
    pixels: np.ndarray, invert: bool | None = None, where: str = "image", on_blank=None
) -> np.ndarray:
    """A grayscale digit of any size (0-255) -> (14, 14) float32: MNIST's preprocessing
    (mnist_digit), then pooled as the pairs are. predict.py's images and the demo page's
    drawings both go through it."""
    from keras_models.data.images import pool

    return pool(mnist_digit(pixels, invert, where, on_blank)[None])[0]


def pair_from_images(first, second, invert: bool | None = None, on_blank=None) -> np.ndarray:
    return np.stack([load_image(first, invert, on_blank), load_image(second, invert, on_blank)])[None]


def answers(export, pairs: np.ndarray) -> list[dict]:
    """One row per pair of `export` (a loaded.LoadedExport), from checked `pairs`: P(digit1 <=
    digit2), the answer, and each digit's class and confidence."""
    out = export.run(pairs)
    rows = []
    for i in range(len(pairs)):
        p = float(np.ravel(out["compare"][i])[0])
        row = {"compare": round(p, 6), "leq": p >= 0.5}
        for name in ("digit1", "digit2"):
            if name in out:
                row[name] = int(np.argmax(out[name][i]))
                row[f"{name}_confidence"] = round(float(np.max(out[name][i])), 4)
        rows.append(row)
    return rows
