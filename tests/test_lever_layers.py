"""The layers of the study's levers (experiments/lever_layers.py): what each computes, in
training only where it should, and that a model holding one survives a save."""

import keras
import numpy as np
import pytest

from experiments.lever_layers import Distillation, ElasticDistortion, LearnedTemperature, bilinear


def test_elastic_distortion_moves_ink_in_training_only_and_keeps_it_roughly():
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


def test_a_learned_temperature_divides_the_logits_and_adds_its_term_in_training_only(tmp_path):
    logits = np.array([[1.0, -2.0, 0.5]], np.float32)
    layer = LearnedTemperature(tasks=2)
    np.testing.assert_allclose(np.asarray(layer(logits)), logits)  # s = 0: the logits as they are
    layer.log_variance.assign(np.log(2.0))
    np.testing.assert_allclose(np.asarray(layer(logits, training=True)), logits / 2.0, rtol=1e-6)
    assert float(layer.losses[-1]) == pytest.approx(0.5 * 2 * np.log(2.0))
    pair = keras.Input((3,))
    model = keras.Model(pair, LearnedTemperature(tasks=2, name="t")(pair))
    model.save(tmp_path / "t.keras")
    again = keras.saving.load_model(tmp_path / "t.keras", safe_mode=True)
    assert again.get_layer("t").tasks == 2


def test_distillation_adds_the_softened_kl_keeps_the_logits_and_never_trains_the_teacher():
    rng = np.random.default_rng(2)
    image = keras.Input((14, 14, 1))
    classifier = keras.Model(image, keras.layers.Dense(10)(keras.layers.Flatten()(image)), name="classifier")
    digits = rng.normal(size=(6, 14, 14, 1)).astype(np.float32)
    logits = rng.normal(size=(6, 10)).astype(np.float32)
    layer = Distillation([classifier], temperature=2.0, weight=0.5)
    before = [w.copy() for w in classifier.get_weights()]
    out = layer([digits, logits])
    np.testing.assert_array_equal(np.asarray(out), logits)
    t_logits = np.asarray(classifier(digits, training=False)) / 2.0
    p = np.exp(t_logits - t_logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    log_q = logits / 2.0 - np.log(np.exp(logits / 2.0).sum(1, keepdims=True))
    expected = 0.5 * 4.0 * np.mean(np.sum(p * (np.log(p) - log_q), axis=1))
    assert float(layer.losses[0]) == pytest.approx(expected, rel=1e-4)
    assert not classifier.trainable  # frozen: the student's optimizer never moves it
    for a, b in zip(before, classifier.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
