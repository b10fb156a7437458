"""predict.py's inputs: what is refused, and in which words."""

import struct
import zlib

import numpy as np
import pytest

from keras_models.core.errors import DataError
from keras_models.serving.predict import load_image, load_pairs_array


def png_header_only(width, height) -> bytes:
    """A PNG whose header claims width x height pixels (and holds none)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_in_one_line(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_header_only(100_000, 100_000))
    with pytest.raises(DataError, match="too many pixels"):
        load_image(tmp_path / "bomb.png")


def test_a_folder_and_a_lone_image_name_the_real_problem(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        load_pairs_array(tmp_path)
    with pytest.raises(DataError, match="is a folder"):
        load_image(tmp_path)
    (tmp_path / "seven.png").write_bytes(png_header_only(28, 28))
    with pytest.raises(DataError, match="give two image files for one pair"):
        load_pairs_array(tmp_path / "seven.png")


def test_pairs_arrays_load_from_npy_and_npz(tmp_path):
    x = np.zeros((3, 2, 14, 14), np.float32)
    np.save(tmp_path / "p.npy", x)
    np.savez(tmp_path / "p.npz", pair=x, other=x[:1])
    assert load_pairs_array(tmp_path / "p.npy").shape == load_pairs_array(tmp_path / "p.npz").shape == (3, 2, 14, 14)


def test_a_blank_image_is_a_blank_digit_with_a_warning_or_refused_without_one(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((40, 30), 255, np.uint8)).save(tmp_path / "blank.png")
    heard = []
    digit = load_image(tmp_path / "blank.png", on_blank=heard.append)
    np.testing.assert_array_equal(digit, np.zeros((14, 14), np.float32))
    assert len(heard) == 1
    assert "blank.png: no ink, the image is blank" in heard[0]
    assert "answered as a blank digit" in heard[0]
    # The demo page, which asks for a drawing, refuses it instead.
    with pytest.raises(DataError, match="no ink"):
        load_image(tmp_path / "blank.png")


def test_polarity_is_told_from_the_border_and_can_be_forced(embedded_raw):
    from keras_models.serving.predict import mnist_digit

    digit = embedded_raw[0][1]
    np.testing.assert_allclose(mnist_digit(255 - digit), mnist_digit(digit), atol=1e-3)
    assert mnist_digit(255 - digit, invert=True).max() > 200
    with pytest.raises(DataError, match="no ink"):
        mnist_digit(255 - digit, invert=False)  # forced the wrong way: white everywhere, no ink


def render(digit28: np.ndarray, size: int, canvas: tuple[int, int], at: tuple[int, int]) -> np.ndarray:
    """An MNIST digit drawn again black on white, `size` px tall, at `at` in a larger canvas."""
    from PIL import Image

    big = np.asarray(Image.fromarray(digit28.astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC))
    page = np.zeros(canvas, np.float32)
    page[at[0] : at[0] + size, at[1] : at[1] + size] = big
    return (255 - page).astype(np.uint8)


@pytest.fixture(scope="module")
def embedded_raw():
    from keras_models.data.images import embedded_csv_path, read_csv

    images, labels = read_csv(embedded_csv_path())
    return images[1::2], labels[1::2]  # the test half, 28x28


@pytest.mark.slow
def test_predict_reads_re_rendered_mnist_digits(tmp_path, embedded_raw, capsys):
    """20 MNIST test digits drawn black on white at other sizes and off centre, read by
    predict.py (the model of a short train.py run) in pairs; a digit counts when the model reads
    it right as MNIST gives it, so that the test measures the preprocessing, not the model."""
    import json

    from PIL import Image

    from keras_models.cli import predict, train
    from keras_models.data.images import pool
    from keras_models.serving.export import load_saved_model

    assert (
        train.main(
            [
                "--model",
                "cnn_aux",
                "--filters",
                "16,32",
                "--hidden",
                "64",
                "--comparer-type",
                "expected",
                "--epochs",
                "10",
                "--lr",
                "2e-3",
                "--out",
                str(tmp_path / "run"),
                "--export-dir",
                str(tmp_path / "saved_models"),
                "--quiet",
            ]
        )
        == 0
    )
    base = tmp_path / "saved_models" / "cnn_aux"
    _, signature = load_saved_model(base / "1")
    images, labels = embedded_raw
    sample = np.random.default_rng(0).permutation(len(images))[:200]  # every class (the file is sorted)
    pooled = pool(images[sample])
    out = signature(pair=np.stack([pooled, pooled], 1))
    chosen = sample[np.argmax(out["digit1"].numpy(), 1) == labels[sample]][:20]
    rng, right = np.random.default_rng(1), 0
    for k in range(0, 20, 2):
        files = []
        for i in chosen[k : k + 2]:
            size = int(rng.integers(30, 90))
            canvas = (size + int(rng.integers(10, 60)), size + int(rng.integers(10, 60)))
            at = (int(rng.integers(0, canvas[0] - size)), int(rng.integers(0, canvas[1] - size)))
            files.append(tmp_path / f"digit{i}.png")
            Image.fromarray(render(images[i], size, canvas, at)).save(files[-1])
        capsys.readouterr()
        assert predict.main([str(base), *map(str, files)]) == 0  # the base path: its highest version
        row = json.loads(capsys.readouterr().out)
        right += int(row["digit1"] == labels[chosen[k]]) + int(row["digit2"] == labels[chosen[k + 1]])
        assert 0 < row["digit1_confidence"] <= 1
    assert right >= 18


def test_links_that_lead_nowhere_say_so(tmp_path):
    loop = tmp_path / "loop.npy"
    loop.symlink_to(tmp_path / "other.npy")
    (tmp_path / "other.npy").symlink_to(loop)
    with pytest.raises(DataError, match="loop.npy: a loop of symbolic links"):
        load_pairs_array(loop)
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(DataError, match="dangling.png: a symbolic link to .*gone.png, which does not exist"):
        load_image(tmp_path / "dangling.png")


def test_an_empty_array_of_pairs_is_refused(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 2, 14, 14), np.float32))
    with pytest.raises(DataError, match=r"empty.npy: holds no pairs \(shape \(0, 2, 14, 14\)\); nothing to answer"):
        load_pairs_array(tmp_path / "empty.npy")


def test_a_black_digit_on_a_transparent_background_reads_as_on_white(tmp_path, embedded_raw):
    from PIL import Image

    ink = embedded_raw[0][1].astype(np.uint8)  # white on black, 0-255
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = ink  # black where there is ink, transparent elsewhere
    Image.fromarray(rgba, "RGBA").save(tmp_path / "transparent.png")
    Image.fromarray(255 - ink, "L").convert("RGB").save(tmp_path / "on_white.png")
    transparent, on_white = load_image(tmp_path / "transparent.png"), load_image(tmp_path / "on_white.png")
    assert transparent.max() > 100  # not read as a blank image
    np.testing.assert_allclose(transparent, on_white, atol=1.0)
