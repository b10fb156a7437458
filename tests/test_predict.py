"""predict.py's inputs: what is refused, and in which words."""
import struct
import zlib

import numpy as np
import pytest

from keras_models.errors import DataError
from keras_models.predict import load_image, load_pairs_array


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
