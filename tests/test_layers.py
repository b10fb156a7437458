"""The registered layers and loss: what each computes, and that they survive a save."""

import keras
import numpy as np
import pytest

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


def test_elastic_distortion_moves_ink_in_training_only_and_keeps_it_roughly():
    from keras_models.models.layers import ElasticDistortion, bilinear

    x = np.zeros((8, 14, 14, 1), np.float32)
    x[:, 3:11, 6:8, 0] = 1.0  # a stroke, away from the edges
    layer = ElasticDistortion(seed=3)
    assert np.array_equal(np.asarray(layer(x)), x)  # inference: untouched
    y = np.asarray(layer(x, training=True))
    assert not np.allclose(y, x)
    assert np.all(y >= 0)
    assert np.all(y <= 1)
    ink = y.sum(axis=(1, 2, 3))
    # Stretching thins a stroke and squeezing thickens it; the ink stays within a factor of 2.
    assert np.all(ink > 0.5 * x[0].sum())
    assert np.all(ink < 2 * x[0].sum())
    # The displacement is the paper's size, scaled to 14 px: a fraction of a pixel to a pixel or two.
    moved = np.abs(y - x).sum(axis=(1, 2, 3)) / x[0].sum()
    assert np.all(moved > 0.05)
    assert np.all(moved < 1.5)
    # bilinear() at integer coordinates is a plain lookup: here a shift by one row.
    ys, xs = np.meshgrid(np.arange(14, dtype=np.float32), np.arange(14, dtype=np.float32), indexing="ij")
    shifted = np.asarray(bilinear(x, np.broadcast_to(ys + 1, (8, 14, 14)), np.broadcast_to(xs, (8, 14, 14))))
    np.testing.assert_array_equal(shifted[:, :13], x[:, 1:])


# A small augmented cnn_aux with the parameter-free comparer.
TINY = Config(model="cnn_aux", filters=(4,), hidden=(8,), comparer_type="expected", augment=True)


def test_elastic_ema_and_one_cycle_model_saves_and_loads_in_safe_mode(tmp_path):
    """The options train, and a model built with them saves and loads like any other; with
    use_ema, fit ends with the averaged weights in the model."""
    cfg = TINY.replace(elastic=True, ema=True, lr_schedule="onecycle", lr=3e-3, epochs=2)
    model = compile_for(build_model(cfg.spec), cfg, steps_per_epoch=2)
    assert "augment_elastic" in [layer.name for layer in model.layers]
    assert model.optimizer.use_ema
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 2, 14, 14)).astype(np.float32)
    digits = rng.integers(0, 10, (8, 2))
    y = {
        "compare": (digits[:, 0] <= digits[:, 1]).astype(np.float32)[:, None],
        "digit1": digits[:, 0],
        "digit2": digits[:, 1],
    }
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    averages = [v.numpy() for v in model.optimizer._model_variables_moving_average]
    for v, a in zip(model.trainable_variables, averages, strict=False):
        np.testing.assert_allclose(v.numpy(), a, rtol=1e-6)  # the model holds the average
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(
        again.predict(x, verbose=0)["compare"], model.predict(x, verbose=0)["compare"], rtol=1e-5
    )


def test_distillation_adds_the_softened_kl_keeps_the_logits_and_never_trains_the_teacher():
    from keras_models.models.builder import DISTILL_WEIGHT, student_of
    from keras_models.models.layers import Distillation

    cfg = TINY.replace(shift=1, rotation=0.0, teachers=1, distill_temperature=2.0, epochs=1)
    teacher = build_model(cfg.spec)
    classifier = teacher.get_layer("classifier")
    rng = np.random.default_rng(2)
    digits = rng.normal(size=(6, 14, 14, 1)).astype(np.float32)
    logits = rng.normal(size=(6, 10)).astype(np.float32)
    layer = Distillation([classifier], temperature=2.0, weight=0.5)
    out = layer([digits, logits])
    np.testing.assert_array_equal(np.asarray(out), logits)
    t_logits = np.asarray(classifier(digits, training=False)) / 2.0
    p = np.exp(t_logits - t_logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    log_q = logits / 2.0 - np.log(np.exp(logits / 2.0).sum(1, keepdims=True))
    expected = 0.5 * 4.0 * np.mean(np.sum(p * (np.log(p) - log_q), axis=1))
    assert float(layer.losses[0]) == pytest.approx(expected, rel=1e-4)

    # In a training model the teacher is frozen (its dropout and batch norm in inference mode),
    # the student learns, and the student alone is what comes out.
    model = compile_for(
        build_model(cfg.spec, teachers=[teacher], temperature=cfg.recipe.distill_temperature), cfg, steps_per_epoch=2
    )
    assert model.get_layer("distillation").weight == DISTILL_WEIGHT
    before = [w.copy() for w in teacher.get_weights()]
    student_before = model.get_layer("classifier").get_weights()[0].copy()
    x = rng.uniform(0, 255, (8, 2, 14, 14)).astype(np.float32)
    d = rng.integers(0, 10, (8, 2))
    y = {"compare": (d[:, 0] <= d[:, 1]).astype(np.float32)[:, None], "digit1": d[:, 0], "digit2": d[:, 1]}
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    for a, b in zip(before, teacher.get_weights(), strict=False):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(student_before, model.get_layer("classifier").get_weights()[0])
    student = student_of(model, cfg.spec, 0.0, 1.0)
    assert "distillation" not in {layer.name for layer in student.layers}
    assert student.count_params() == teacher.count_params()
    served, trained = student.predict(x, verbose=0), model.predict(x, verbose=0)
    for key in ("compare", "digit1", "digit2"):
        np.testing.assert_allclose(served[key], trained[key], rtol=1e-5, atol=1e-6)
