"""keras_models.models.normalization: the fused batch norm computes Keras' BatchNormalization, in float32
and under the mixed_bfloat16 policy; the pixel statistics are weights a later round can set."""

import keras
import numpy as np
import pytest

from keras_models.models.bodies import BN
from keras_models.models.builder import dtype_policy
from keras_models.models.normalization import FusedBatchNormalization, PixelNormalization


def twins(policy: str, shape=(None, 7, 7, 8)):
    """A fused layer and Keras' own, built under `policy`, with the same (non-trivial) weights."""
    with dtype_policy(policy):
        fused, plain = FusedBatchNormalization(**BN), keras.layers.BatchNormalization(**BN)
    rng = np.random.default_rng(0)
    for layer in (fused, plain):
        layer.build(shape)
    for w_fused, w_plain in zip(fused.weights, plain.weights, strict=False):
        value = rng.uniform(0.5, 1.5, w_fused.shape).astype("float32")
        w_fused.assign(value)
        w_plain.assign(value)
    return fused, plain


@pytest.mark.parametrize(("policy", "atol"), [("float32", 1e-5), ("mixed_bfloat16", 3e-2)])
def test_fused_batch_norm_is_keras_batch_norm(policy, atol):
    fused, plain = twins(policy)
    x = np.random.default_rng(1).normal(3.0, 2.0, (16, 7, 7, 8)).astype("float32")
    assert fused._fused(keras.ops.cast(x, fused.compute_dtype), None)  # the fused kernel, in either policy
    for training in (True, False):
        y_fused, y_plain = fused(x, training=training), plain(x, training=training)
        assert keras.backend.standardize_dtype(y_fused.dtype) == fused.compute_dtype
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(keras.ops.cast(y_fused, "float32")),
            keras.ops.convert_to_numpy(keras.ops.cast(y_plain, "float32")),
            atol=atol,
        )
    # The moving statistics follow Keras' rule (biased variance), in float32 in both policies.
    for name in ("moving_mean", "moving_variance"):
        a, b = getattr(fused, name), getattr(plain, name)
        assert keras.backend.standardize_dtype(a.dtype) == "float32"
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-3 + atol)


def test_dense_inputs_take_keras_own_code():
    fused, plain = twins("float32", (None, 8))
    x = np.random.default_rng(2).normal(size=(32, 8)).astype("float32")
    assert not fused._fused(x, None)
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=1e-6)


def test_pixel_statistics_are_weights_and_survive_a_round_trip(tmp_path):
    layer = PixelNormalization(30.0, 80.0**2)
    x = np.full((1, 2, 14, 14), 110.0, "float32")
    np.testing.assert_allclose(layer(x), 1.0)
    layer.mean.assign(10.0)  # what a later round on the same traced step does
    np.testing.assert_allclose(layer(x), 1.25)
    model = keras.Sequential([keras.Input((2, 14, 14)), PixelNormalization(30.0, 80.0**2)])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded(x), 1.0)
