"""The stacking benchmark's models (experiments/stacking_speed.py): R rounds in one model are R
independent models, each round's answers its own model's on its own pairs."""

import numpy as np
import pytest

from experiments.stacking_speed import StackedDense, copies, einsum_mlp, stacked_data, timed
from keras_models.data.images import load_data
from keras_models.training.config import Config
from keras_models.training.rounds import RoundData


@pytest.fixture(scope="module")
def rounds():
    images = load_data("embedded", None)
    cfg = Config(model="cc_aux", hidden=(16,), comparer=(8,), pairs=100)
    return cfg, [RoundData.draw(cfg, images, r) for r in range(3)]


def test_each_round_of_the_copies_answers_as_its_own_model_on_its_own_pairs(rounds):
    cfg, data = rounds
    model = copies(cfg, data)
    x, y = stacked_data(model, [d.test for d in data], False)
    assert x.shape == (len(data[0].test), 3, 2, 14, 14)
    assert set(y) == {f"{k}_{r}" for k in ("compare", "digit1", "digit2") for r in range(3)}
    together = model.predict(x, verbose=0)
    for r, d in enumerate(data):
        alone = model.get_layer(f"round{r}").predict(d.test.x, verbose=0)
        np.testing.assert_allclose(together[f"compare_{r}"], alone["compare"], atol=1e-6)
        np.testing.assert_array_equal(y[f"digit1_{r}"], d.test.classes[:, 0])
    # Three sets of weights, none shared: the copies are as many models.
    params = [model.get_layer(f"round{r}").count_params() for r in range(3)]
    assert model.count_params() == sum(params)


def test_stacked_dense_is_one_dense_layer_per_round():
    layer = StackedDense(2, 3)
    x = np.random.default_rng(0).normal(size=(5, 2, 4)).astype("float32")
    out = np.asarray(layer(x))
    kernel, bias = (np.asarray(w) for w in layer.weights)
    for r in range(2):
        np.testing.assert_allclose(out[:, r], x[:, r] @ kernel[r] + bias[r], rtol=1e-5, atol=1e-6)
    assert StackedDense.from_config(layer.get_config()).units == 3


@pytest.mark.slow
def test_every_form_trains_and_is_timed(rounds):
    _, data = rounds
    cfg = Config(model="mlp", hidden=(16, 16), pairs=100, batch_size=50)
    flat = einsum_mlp(cfg, 3)
    x, y = stacked_data(flat, [d.train for d in data], True)
    tx, ty = stacked_data(flat, [d.test for d in data], True)
    assert y["compare"].shape == (len(data[0].train), 3, 1)
    before = [w.copy() for w in flat.get_weights()]
    assert timed(flat, cfg, x, y, tx, ty, jit=False) > 0
    kernels = [(a, b) for a, b in zip(before, flat.get_weights(), strict=True) if a.ndim == 3]
    assert kernels
    assert all(not np.array_equal(a, b) for a, b in kernels)  # every round's kernels trained
