import gzip

import numpy as np
import pytest
from conftest import idx_bytes, write_idx_folder
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from keras_models.data.images import (
    DataError,
    comparison_target,
    load_data,
    load_images,
    make_pairs,
    pool,
    read_csv,
    read_folder,
    read_idx,
)


def test_pool_averages_each_2x2_block():
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, 0:2, 0:2] = [[0, 4], [8, 12]]  # block (0, 0): mean 6
    img[0, 26:28, 26:28] = 255  # block (13, 13): mean 255
    pooled = pool(img)
    assert pooled.shape == (1, 14, 14)
    assert pooled.dtype == np.float32
    assert pooled[0, 0, 0] == 6
    assert pooled[0, 13, 13] == 255
    assert pooled.sum() == 6 + 255


def test_pairs_targets_match_classes_and_equal_digits_give_one():
    images = np.arange(8, dtype=np.float32)[:, None, None] * np.ones((8, 14, 14), np.float32)
    labels = np.array([3, 3, 1, 7, 7, 0, 5, 2])
    pairs = make_pairs(images, labels, 4, np.random.default_rng(0))
    assert pairs.x.shape == (4, 2, 14, 14)
    assert pairs.x.dtype == np.float32
    # Each image's pixel value is its index: the pixels tell which image went where.
    idx = pairs.x[:, :, 0, 0].astype(int)
    np.testing.assert_array_equal(pairs.classes, labels[idx])
    np.testing.assert_array_equal(pairs.target, (labels[idx[:, 0]] <= labels[idx[:, 1]]).astype(np.float32))
    assert comparison_target(np.array([[4, 4], [5, 4], [4, 5]])).tolist() == [1.0, 0.0, 1.0]


def test_too_few_images_is_a_data_error():
    with pytest.raises(DataError, match="10 pairs need 20 images, the source has 8"):
        make_pairs(np.zeros((8, 14, 14)), np.zeros(8), 10, np.random.default_rng(0))


def test_embedded_halves_are_disjoint_and_balanced(embedded):
    train, test = embedded
    assert train.images.shape == (2500, 14, 14)
    assert test.images.shape == (2500, 14, 14)
    assert np.bincount(train.labels).tolist() == [250] * 10
    train_rows = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in train_rows for img in test.images)
    assert train.images.min() >= 0
    assert train.images.max() <= 255
    assert train.images.max() > 200


def test_embedded_train_uses_all_images_when_test_comes_elsewhere(small_mnist_folder):
    train, test = load_data("embedded", str(small_mnist_folder))
    assert len(train.images) == 5000
    assert len(test.images) == 600
    assert test.source.endswith(":test")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader_gzipped_and_raw(tmp_path, gz):
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 9], np.uint8)
    write_idx_folder(tmp_path, images, labels, split="t10k", gz=gz)
    got_images, got_labels = read_folder(tmp_path, "test")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_idx_folder_feeds_pairs(small_mnist_folder):
    train, test = load_data(str(small_mnist_folder))
    assert len(train.images) == 600
    assert len(test.images) == 600
    pairs = make_pairs(train.images, train.labels, 300, np.random.default_rng(0))
    assert pairs.x.shape == (300, 2, 14, 14)


def test_npz_folder(tmp_path, embedded):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        y_train=np.array([1, 2, 3, 4]),
        x_test=rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        y_test=np.array([5, 6]),
    )
    assert load_images(str(tmp_path), "test").labels.tolist() == [5, 6]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 100,
            "holds 100 data bytes",
        ),
        (b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x01\x02\x03", "wrong magic number 0x00000801"),
        (b"PK\x03\x04 not an idx file at all", "not an unsigned-byte IDX file"),
        (b"\x00\x00", "too short"),
        # Sizes whose product overflows numpy's int64: said as the header says them.
        (b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff" * 3 + b"\x00" * 8, f"says {(2**32 - 1) ** 3}"),
    ],
)
def test_corrupt_idx_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        read_idx(path, expect_magic=0x00000803)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_truncated_gzip_is_a_data_error(tmp_path):
    data = gzip.compress(idx_bytes(np.zeros((10, 28, 28), np.uint8)))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(path)


def test_missing_folder_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_images(str(tmp_path / "nope"), "train")
    with pytest.raises(DataError, match="no test images"):
        load_images(str(tmp_path), "test")


def test_corrupt_csv(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match="expected rows of 784 pixels"):
        read_csv(path)
    path.write_text("a,b\n")
    with pytest.raises(DataError, match="not a numeric CSV"):
        read_csv(path)


# --------------------------------------------------------------------------- properties


@settings(max_examples=50, deadline=None)
@given(arrays(np.int64, st.integers(2, 60), elements=st.integers(0, 9)), st.integers(0, 2**32 - 1))
def test_targets_agree_with_classes_for_any_labels(labels, seed):
    images = np.arange(len(labels), dtype=np.float32)[:, None, None] * np.ones((1, 14, 14), np.float32)
    n = len(labels) // 2
    pairs = make_pairs(images, labels, n, np.random.default_rng(seed))
    idx = pairs.x[:, :, 0, 0].astype(int)
    np.testing.assert_array_equal(pairs.classes, labels[idx])
    assert ((pairs.target == 1.0) == (pairs.classes[:, 0] <= pairs.classes[:, 1])).all()
    # Drawn without replacement: no image appears twice in a set.
    assert len(np.unique(idx)) == 2 * n


@settings(max_examples=50, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 4), st.just(28), st.just(28))))
def test_pooling_keeps_the_image_mean(images):
    np.testing.assert_allclose(
        pool(images).mean(axis=(1, 2)), images.astype(np.float64).mean(axis=(1, 2)), rtol=1e-5, atol=1e-3
    )


def test_swapped_pairs_recompute_the_target():
    from keras_models.data.images import Pairs, swapped

    x = np.arange(3 * 2 * 14 * 14, dtype=np.float32).reshape(3, 2, 14, 14)
    classes = np.array([[1, 2], [4, 4], [7, 3]])
    s = swapped(Pairs(x, comparison_target(classes), classes))
    np.testing.assert_array_equal(s.x[:, 0], x[:, 1])
    assert s.classes.tolist() == [[2, 1], [4, 4], [3, 7]]
    assert s.target.tolist() == [0.0, 1.0, 1.0]  # equal digits stay 1: not the negation


def test_unused_images_are_exactly_those_outside_the_round_pairs(embedded):
    from keras_models.data.images import draw_round, unused_images

    train, test = embedded
    pairs, _ = draw_round(train, test, 300, seed=5)
    rest = unused_images(train, 300, seed=5)
    assert len(rest.images) == len(train.images) - 600
    key = lambda imgs: {im.tobytes() for im in imgs}  # noqa: E731
    in_pairs = key(pairs.x.reshape(-1, 14, 14))
    assert not in_pairs & key(rest.images)
    assert in_pairs | key(rest.images) == key(train.images)


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.full((2, 28, 28), np.nan), [1, 2], "NaN or infinite"),
        (np.ones((2, 28, 28), np.complex64) * 9, [1, 2], "real numbers"),
        (np.ones((2, 28, 28)) * 9, [1.0, 2.5], "labels must be integers"),
        (np.ones((2, 28, 28)) * 300, [1, 2], "must lie in 0-255"),
        (np.full((2, 28, 28), 0.8), [1, 2], "multiply them by 255"),
    ],
)
def test_npz_that_would_be_cast_silently_is_refused(tmp_path, images, labels, message):
    np.savez(tmp_path / "mnist.npz", x_test=images, y_test=np.array(labels))
    with pytest.raises(DataError, match=message):
        load_images(str(tmp_path), "test")


def test_dev_pairs_come_from_training_images_outside_the_round_pairs(embedded):
    from keras_models.data.images import dev_pairs, draw_round

    train, test = embedded
    pairs, test_pairs = draw_round(train, test, 500, 3)
    dev = dev_pairs(train, 500, 200, 3)
    seen = {d.tobytes() for d in pairs.x.reshape(-1, 14, 14)}
    assert len(dev) == 200
    assert not any(d.tobytes() in seen for d in dev.x.reshape(-1, 14, 14))
    assert not {d.tobytes() for d in dev.x.reshape(-1, 14, 14)} & {
        d.tobytes() for d in test_pairs.x.reshape(-1, 14, 14)
    }
    np.testing.assert_array_equal(dev.target, comparison_target(dev.classes))
    np.testing.assert_array_equal(dev_pairs(train, 500, 200, 3).x, dev.x)  # the same for the same seed
    with pytest.raises(DataError, match="need"):
        dev_pairs(train, 1000, 400, 3)  # 2,500 images: 500 left outside 1000 pairs


def test_a_file_given_as_the_data_folder_is_named_a_file(tmp_path):
    from keras_models.core.errors import DataError
    from keras_models.data.images import load_data

    (tmp_path / "README.md").write_text("# not MNIST")
    with pytest.raises(DataError, match=r"README.md: a file, not a folder \(of MNIST's IDX files"):
        load_data(str(tmp_path / "README.md"))


def test_a_truncated_npz_is_one_line_naming_it(tmp_path, embedded):
    from keras_models.data.images import load_data

    np.savez(tmp_path / "mnist.npz", x_test=embedded[1].images[:50], y_test=embedded[1].labels[:50])
    whole = (tmp_path / "mnist.npz").read_bytes()
    (tmp_path / "mnist.npz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="mnist.npz: corrupt or not an npz file") as err:
        load_data("embedded", str(tmp_path))
    assert "\n" not in str(err.value)
