import keras
import numpy as np
import pytest

from keras_models.models import architectures
from keras_models.models.builder import AUX_LOSS_WEIGHTS, build_model
from keras_models.models.saving import load_keras_model
from keras_models.training.compile import compile_for
from keras_models.training.config import Config


@pytest.fixture(scope="module")
def batch(embedded):
    from keras_models.data.images import make_pairs

    train, _ = embedded
    return make_pairs(train.images, train.labels, 8, np.random.default_rng(0)).x


@pytest.mark.parametrize("name", [a.name for a in architectures.report_architectures()])
def test_models_build_with_named_input_and_outputs(name, batch):
    model = build_model(Config(model=name).spec, mean=30.0, variance=80.0**2)
    assert model.input.name == "pair"
    assert tuple(model.input.shape) == (None, 2, 14, 14)
    out = model.predict(batch, verbose=0)
    expected = set(architectures.get(name).outputs)
    assert set(out) == expected
    assert out["compare"].shape == (8, 1)
    assert ((out["compare"] >= 0) & (out["compare"] <= 1)).all()
    for digit in expected - {"compare"}:
        assert out[digit].shape == (8, 10)
        np.testing.assert_allclose(out[digit].sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", ["cc", "cnn_aux"])
def test_one_classifier_serves_both_digits(name, batch):
    # With the pixels' own statistics: unnormalised 0-255 inputs can saturate an untrained
    # classifier's softmax, and then a shifted bias changes nothing that the test could see.
    model = build_model(Config(model=name).spec, 33.0, 80.0**2)
    classifiers = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert [c.name for c in classifiers] == ["classifier"]
    # Both digit outputs come from that one set of weights: changing it changes both.
    before = model.predict(batch, verbose=0)
    logits = classifiers[0].get_layer("logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel, bias + np.arange(10, dtype=np.float32)])
    after = model.predict(batch, verbose=0)
    assert not np.allclose(before["digit1"], after["digit1"])
    assert not np.allclose(before["digit2"], after["digit2"])
    # The same image as digit 1 and as digit 2 gets the same class probabilities.
    swapped = batch[:, ::-1]
    np.testing.assert_allclose(model.predict(swapped, verbose=0)["digit2"], after["digit1"], atol=1e-5)


def test_default_cnn_classifier_is_the_reference_network():
    classifier = build_model(Config(model="cnn_aux").spec).get_layer("classifier")
    convs = [layer for layer in classifier.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 32, 64, 64]
    assert classifier.get_layer("flatten").output.shape[-1] == 576
    assert [layer.units for layer in classifier.layers if isinstance(layer, keras.layers.Dense)] == [256, 10]
    # Trainable parameters of the PyTorch peer's CnnAux, counted from its spec.
    model = build_model(Config(model="cnn_aux").spec)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 225_971


def test_widths_depth_and_switches_reach_the_layers():
    cfg = Config(model="cc", hidden=(64, 32, 16), comparer=(12,), dropout=0.0, batch_norm=False)
    model = build_model(cfg.spec)
    classifier = model.get_layer("classifier")
    assert [layer.units for layer in classifier.layers if isinstance(layer, keras.layers.Dense)] == [64, 32, 16, 10]
    assert not any(
        isinstance(layer, (keras.layers.Dropout, keras.layers.BatchNormalization)) for layer in classifier.layers
    )
    assert [layer.units for layer in model.layers if layer.name.startswith("comparer_dense")] == [12]
    cnn = build_model(Config(model="cnn", filters=(8, 16, 16)).spec)
    assert [layer.filters for layer in cnn.layers if isinstance(layer, keras.layers.Conv2D)] == [8, 8, 16, 16, 16, 16]


@pytest.mark.parametrize(
    ("name", "weights"),
    [
        ("cc_aux", AUX_LOSS_WEIGHTS),
        ("cnn_aux", AUX_LOSS_WEIGHTS),
        ("cc", {"compare": 1.0, "digit1": 0.0, "digit2": 0.0}),
        ("mlp", {"compare": 1.0}),
    ],
)
def test_loss_weights(name, weights):
    cfg = Config(model=name)
    model = compile_for(build_model(cfg.spec), cfg)
    assert model.get_compile_config()["loss_weights"] == weights


def test_aux_loss_is_the_weighted_sum(batch):
    cfg = Config(model="cc_aux")
    model = compile_for(build_model(cfg.spec, 30.0, 6400.0), cfg)
    y = {"compare": np.ones(8, np.float32), "digit1": np.arange(8) % 10, "digit2": (np.arange(8) + 3) % 10}
    r = model.evaluate(batch, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(
        r["loss"], 0.6 * r["compare_loss"] + 0.2 * r["digit1_loss"] + 0.2 * r["digit2_loss"], rtol=1e-5
    )


@pytest.mark.parametrize("name", ["mlp", "cnn_cc"])
def test_keras_round_trip_in_safe_mode(name, batch, tmp_path):
    cfg = Config(model=name)
    model = compile_for(build_model(cfg.spec, 33.0, 7000.0), cfg)
    model.save(tmp_path / "m.keras")
    loaded = load_keras_model(tmp_path / "m.keras")  # safe_mode=True
    a, b = model.predict(batch, verbose=0), loaded.predict(batch, verbose=0)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("name", ["mlp", "cnn_aux"])
def test_mixed_bfloat16_reaches_the_arithmetic_and_answers_float32(name, batch, tmp_path):
    cfg = Config(model=name, precision="mixed_bfloat16", filters=(8, 16), hidden=(32,))
    model = compile_for(build_model(cfg.spec, 33.0, 80.0**2), cfg)
    assert keras.config.dtype_policy().name == "float32"  # the builder leaves the global policy alone
    body = model.get_layer("classifier").layers if cfg.arch.shared else model.layers
    heavy = [layer for layer in body if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    heavy = [layer for layer in heavy if layer.name not in ("compare", "logits")] + (
        [model.get_layer("classifier").get_layer("logits")] if cfg.arch.shared else []
    )
    assert heavy
    assert all(layer.compute_dtype == "bfloat16" for layer in heavy)
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in model.weights)
    assert model.get_layer("normalize").compute_dtype == "float32"
    out = model.predict(batch, verbose=0)
    assert {k: v.dtype.name for k, v in out.items()} == {k: "float32" for k in out}
    float32 = build_model(cfg.replace(precision="float32").spec, 33.0, 80.0**2)
    float32.set_weights(model.get_weights())  # the same weights, computed in float32: close
    np.testing.assert_allclose(float32.predict(batch, verbose=0)["compare"], out["compare"], atol=0.05)
    model.save(tmp_path / "m.keras")
    loaded = load_keras_model(tmp_path / "m.keras")  # the policy is part of each layer's config
    np.testing.assert_array_equal(loaded.predict(batch, verbose=0)["compare"], out["compare"])


def test_augmented_expected_model_is_deterministic_at_inference_and_round_trips(batch, tmp_path):
    cfg = Config(model="cnn_aux", augment=True, comparer_type="expected", filters=(8, 16), hidden=(32,))
    model = compile_for(build_model(cfg.spec, 33.0, 6400.0), cfg)
    assert not any(layer.name.startswith("comparer_dense") for layer in model.layers)
    a, b = model.predict(batch, verbose=0), model.predict(batch, verbose=0)
    np.testing.assert_array_equal(a["compare"], b["compare"])
    trained = np.asarray(model(batch, training=True)["digit1"])
    assert not np.allclose(trained, np.asarray(model(batch, training=True)["digit1"]))  # fresh shifts each call
    model.save(tmp_path / "aug.keras")  # (the training calls moved the batch-norm statistics)
    np.testing.assert_array_equal(
        load_keras_model(tmp_path / "aug.keras").predict(batch, verbose=0)["compare"],
        model.predict(batch, verbose=0)["compare"],
    )


def test_ensemble_model_averages_members_and_views_and_round_trips(batch, tmp_path):
    from keras_models.models.builder import ensemble_model
    from keras_models.models.layers import ShiftedViews

    cfg = Config(model="cnn_aux", comparer_type="expected", filters=(8,), hidden=(16,))
    members = [build_model(cfg.spec, 30.0, 80.0**2) for _ in range(2)]
    views = ((0, 0), (1, 0), (0, -1))
    seen = np.asarray(ShiftedViews(views)(batch)).reshape(len(views), *batch.shape)
    outs = [m.predict(v, verbose=0) for m in members for v in seen]
    expected = {k: np.mean([o[k] for o in outs], axis=0) for k in ("digit1", "digit2")}
    p1, p2 = expected["digit1"], expected["digit2"]
    expected["compare"] = np.array(
        [[sum(p1[n, i] * p2[n, j] for i in range(10) for j in range(i, 10))] for n in range(len(batch))]
    )
    model = ensemble_model(members, views)
    got = model.predict(batch, verbose=0)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-5)
    assert not np.allclose(outs[0]["digit1"], outs[len(views)]["digit1"])  # the members differ
    model.save(tmp_path / "ensemble.keras")
    again = load_keras_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(again.predict(batch, verbose=0)["compare"], got["compare"], atol=1e-6)
