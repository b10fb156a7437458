"""The registered layers and loss: what each computes, and that they survive a save."""

import keras
import numpy as np

from keras_models.models.builder import build_model
from keras_models.training.compile import compile_for
from keras_models.training.config import Config


def test_expected_comparer_is_the_probability_of_leq():
    from keras_models.models.layers import ExpectedLeq

    p1 = np.zeros((3, 10), np.float32)
    p2 = np.zeros((3, 10), np.float32)
    p1[0, 3], p2[0, 3] = 1, 1  # equal digits: 3 <= 3
    p1[1, 5], p2[1, 4] = 1, 1  # 5 <= 4 is false
    p1[2, [2, 6]] = 0.5
    p2[2, 4] = 1  # half the time 2 <= 4, half the time 6 <= 4
    out = np.asarray(ExpectedLeq()([p1, p2]))
    np.testing.assert_allclose(out[:, 0], [1.0, 0.0, 0.5], atol=1e-6)
    rng = np.random.default_rng(0)
    a, b = rng.dirichlet(np.ones(10), 4).astype(np.float32), rng.dirichlet(np.ones(10), 4).astype(np.float32)
    brute = [sum(a[n, i] * b[n, j] for i in range(10) for j in range(10) if i <= j) for n in range(4)]
    np.testing.assert_allclose(np.asarray(ExpectedLeq()([a, b]))[:, 0], brute, rtol=1e-5)


def test_label_smoothing_loss_matches_the_smoothed_one_hot_cross_entropy(tmp_path):
    from keras_models.models.layers import SmoothedSparseCrossentropy

    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(10), 5).astype(np.float32)
    labels = np.array([0, 3, 9, 3, 7])
    target = np.full((5, 10), 0.1 / 10) + 0.9 * np.eye(10)[labels]
    expected = np.mean(-np.sum(target * np.log(probs), axis=1))
    np.testing.assert_allclose(float(SmoothedSparseCrossentropy(0.1)(labels, probs)), expected, rtol=1e-5)
    plain = float(keras.losses.SparseCategoricalCrossentropy()(labels, probs))
    np.testing.assert_allclose(float(SmoothedSparseCrossentropy(0.0)(labels, probs)), plain, rtol=1e-5)
    # Compiled into a model, it survives a save and a safe_mode load with its setting.
    cfg = Config(model="cc_aux", hidden=(16,), comparer=(8,), label_smoothing=0.2)
    model = compile_for(build_model(cfg.spec), cfg)
    model.save(tmp_path / "smooth.keras")
    loaded = keras.saving.load_model(tmp_path / "smooth.keras", safe_mode=True, compile=True)
    assert loaded.loss["digit1"].label_smoothing == 0.2


def test_shifted_views_move_every_pair_and_their_mean_undoes_the_stacking():
    from keras_models.models.layers import MeanOverViews, ShiftedViews

    x = np.zeros((3, 2, 14, 14), np.float32)
    x[:, 0, 5, 5], x[:, 1, 0, 13] = 1.0, 2.0  # one pixel inside, one in a corner
    views = ((0, 0), (1, 0), (0, -1), (-1, 1))
    out = np.asarray(ShiftedViews(views)(x)).reshape(4, 3, 2, 14, 14)
    np.testing.assert_array_equal(out[0], x)
    assert out[1][:, 0, 6, 5].tolist() == [1.0] * 3
    assert out[1][:, 1, 1, 13].tolist() == [2.0] * 3
    assert out[2][:, 0, 5, 4].tolist() == [1.0] * 3
    assert out[2][:, 1, 0, 12].tolist() == [2.0] * 3
    # Moved up and right, the corner pixel leaves the image; nothing wraps around.
    assert out[3][:, 0, 4, 6].tolist() == [1.0] * 3
    assert out[3].sum() == 3.0
    y = np.arange(24, dtype=np.float32).reshape(12, 2)
    np.testing.assert_allclose(MeanOverViews(4)(y), y.reshape(4, 3, 2).mean(0))


def test_digits_to_batch_stacks_first_digits_then_second_and_back():
    from keras_models.models.layers import BatchToDigits, DigitsToBatch

    x = np.arange(3 * 2 * 14 * 14, dtype=np.float32).reshape(3, 2, 14, 14)
    digits = np.asarray(DigitsToBatch()(x))
    assert digits.shape == (6, 14, 14, 1)
    np.testing.assert_array_equal(digits[:3, ..., 0], x[:, 0])
    np.testing.assert_array_equal(digits[3:, ..., 0], x[:, 1])
    first, second = BatchToDigits()(digits.reshape(6, -1))
    np.testing.assert_array_equal(np.asarray(first), x[:, 0].reshape(3, -1))
    np.testing.assert_array_equal(np.asarray(second).reshape(3, -1), x[:, 1].reshape(3, -1))


def test_one_cycle_rises_to_the_peak_then_descends_and_round_trips():
    from keras_models.models.layers import OneCycle

    s = OneCycle(3e-3, steps=100)
    lrs = np.array([float(s(i)) for i in range(101)])
    np.testing.assert_allclose([lrs[0], lrs[30], lrs[100]], [3e-3 / 25, 3e-3, 3e-3 / 25e4], rtol=1e-4)
    assert np.all(np.diff(lrs[:31]) > 0)
    assert np.all(np.diff(lrs[30:]) < 0)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert again.get_config() == s.get_config()
