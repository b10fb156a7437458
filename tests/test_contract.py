"""The pair contract: one check, the same words, for predict.py and the server."""

import numpy as np
import pytest

from keras_models.core.errors import DataError
from keras_models.data.contract import check_pairs
from keras_models.serving.protocol import BadRequest


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((3, 14, 14)), r"pairs must have shape \(N, 2, 14, 14\), got \(3, 14, 14\)"),
        (np.zeros((0, 2, 14, 14)), r"holds no pairs \(shape \(0, 2, 14, 14\)\)"),
        (np.full((1, 2, 14, 14), np.nan), "NaN or infinite pixels"),
        (np.full((1, 2, 14, 14), 1e39), "beyond float32"),
        (np.ones((1, 2, 14, 14), np.complex64), "pairs must be real numbers, got dtype complex64"),
        ([[1, 2], [3]], "ragged lists"),
    ],
)
@pytest.mark.parametrize("error", [DataError, BadRequest])
def test_every_breach_is_one_line_of_the_callers_error(value, message, error):
    with pytest.raises(error, match=message) as e:
        check_pairs(value, "input", error)
    assert str(e.value).startswith("input: ")
    assert "\n" not in str(e.value)


def test_pairs_on_another_scale_are_refused_against_the_training_range():
    pairs = np.full((2, 2, 14, 14), 0.5)
    with pytest.raises(DataError, match="multiply them by 255"):
        check_pairs(pairs, "input", DataError, pixel_range=(0.0, 255.0))
    assert check_pairs(pairs, "input", DataError, pixel_range=(0.0, 1.0)).dtype == np.float32
    assert check_pairs(pairs * 255, "input", DataError, pixel_range=(0.0, 255.0)).shape == (2, 2, 14, 14)


@pytest.fixture(scope="module")
def real_pairs(embedded):
    from keras_models.data.images import draw_round

    return draw_round(*embedded, 4, seed=0)[1].x


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x: 255 - x, "digit 1 looks inverted"),
        (lambda x: np.full_like(x, 300.0), r"pixels lie in \[300, 300\], outside the training pixels' \[0, 255\]"),
        (lambda x: np.full_like(x, 1e30), "outside the training pixels'"),
        (lambda x: -x, r"pixels lie in \[-255, 0\]|pixels lie in \[-\d+"),
        (lambda x: x / 255, "multiply them by 255"),
    ],
)
def test_each_pair_is_checked_like_an_image(real_pairs, change, message):
    """Real MNIST pairs pass; one changed pair among them is refused by its index."""
    assert check_pairs(real_pairs, "input", DataError, (0.0, 255.0)).shape == real_pairs.shape
    batch = real_pairs.copy()
    batch[2] = change(batch[2])
    with pytest.raises(DataError, match=message) as e:
        check_pairs(batch, "input", DataError, (0.0, 255.0))
    assert str(e.value).startswith("input: pair 2: ")


def test_a_blank_pair_is_answered_even_beside_real_ones(real_pairs):
    batch = np.concatenate([real_pairs[:1], np.zeros((1, 2, 14, 14), np.float32)])
    assert check_pairs(batch, "input", DataError, (0.0, 255.0)).shape == (2, 2, 14, 14)
