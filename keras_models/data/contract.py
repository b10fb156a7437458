"""The pair contract, defined once: what every model, export, predict.py and the server take.

A batch of pairs is real numbers of shape (N, 2, 14, 14), N >= 1, finite, in the pixel units
of the training pairs (0-255 for MNIST), each pair checked against the export's recorded range
as an image file is: out of range, scaled to 0-1 or inverted, it is refused; blank, answered.
predict.py and the server check it with `check_pairs` before the model sees anything; the
SavedModel signature checks the shape and finiteness in its graph, with the same words
(`SHAPE_TEXT`, `NOT_FINITE`), and answers an empty batch with empty outputs.
"""

from __future__ import annotations

import numpy as np

PAIR_SHAPE = (2, 14, 14)
SHAPE_TEXT = "(N, 2, 14, 14)"
NOT_FINITE = "NaN or infinite pixels"
# The pixel units of MNIST, and so of every model trained on it: what a pair is checked against
# where an export records no range of its own.
TRAINING_PIXEL_RANGE = (0.0, 255.0)
# What every model answers per pair: P(digit1 <= digit2), and for the weight-sharing models each
# digit's ten class probabilities.
OUTPUT_SHAPES = {"compare": (1,), "digit1": (10,), "digit2": (10,)}


def output_shape(name: str) -> tuple[int, ...]:
    """The shape of one output per pair, e.g. (10,) for digit1."""
    return OUTPUT_SHAPES[name]


def check_pairs(
    value, where: str, error: type[Exception] = ValueError, pixel_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Nested lists or an array -> (N, 2, 14, 14) float32, or `error` with one line that says
    what is wrong. `pixel_range`: the (min, max) pixel of the training pairs, from an export's
    metadata.json."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise error(f"{where}: ragged lists; expected numbers of shape {SHAPE_TEXT}") from None
    if arr.dtype.kind not in "iuf":
        got = "other values" if arr.dtype.kind == "O" else f"dtype {arr.dtype.name}"
        raise error(f"{where}: pairs must be real numbers, got {got}")
    if arr.ndim != 4 or arr.shape[1:] != PAIR_SHAPE:
        raise error(f"{where}: pairs must have shape {SHAPE_TEXT}, got {arr.shape}")
    if len(arr) == 0:
        raise error(f"{where}: holds no pairs (shape {arr.shape}); nothing to answer")
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused just below
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise error(f"{where}: pairs hold {NOT_FINITE} (or numbers beyond float32)")
    if pixel_range is not None:
        check_pixel_range(arr, where, error, pixel_range)
    return arr


def check_pixel_range(arr: np.ndarray, where: str, error: type[Exception], pixel_range: tuple[float, float]) -> None:
    """Each pair against the training pairs' pixel range (low, high), as an image file is read:
    a pair is refused when its pixels leave the range, when they look scaled to 0-1 for a model
    trained on 0-255 (answers at chance level), or when a digit looks inverted (dark ink on a
    light background: MNIST's digits are light on black, with a black border). A blank pair is
    valid input and is answered."""
    low, high = pixel_range
    span = high - low
    for i, pair in enumerate(arr):
        name = f"{where}: pair {i}" if len(arr) > 1 else where
        lo, hi = float(pair.min()), float(pair.max())
        if lo < low - 1e-3 * span or hi > high + 1e-3 * span:
            raise error(f"{name}: pixels lie in [{lo:g}, {hi:g}], outside the training pixels' [{low:g}, {high:g}]")
        if high > 1.0 and 0.0 < hi <= 1.0:
            raise error(
                f"{name}: pixels lie in [{lo:g}, {hi:g}], the model was trained on [{low:g}, {high:g}]; "
                "multiply them by 255"
            )
        border = np.concatenate([pair[:, 0, :], pair[:, -1, :], pair[:, :, 0], pair[:, :, -1]], axis=1)
        for d, ring in enumerate(border, 1):
            if ring.mean() > low + span / 2:
                raise error(
                    f"{name}: digit {d} looks inverted (a light background; MNIST's digits are light on "
                    f"black): send {high:g} - x"
                )
