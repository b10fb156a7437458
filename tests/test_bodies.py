"""The project's bodies (keras_models.models.bodies): what each builds from the spec, and the
contract a body offers the builder."""

import keras
import pytest

from keras_models.models.bodies import Body, ConvBody, DenseBody
from keras_models.models.spec import ModelSpec


def layer_names(model) -> list[str]:
    return [layer.name for layer in model.layers]


def test_the_dense_body_is_dense_bn_relu_dropout_per_width():
    spec = ModelSpec(model="cc_aux", hidden=(32, 16))
    digit = keras.Input((14, 14, 1))
    out = DenseBody().classifier(digit, spec)
    model = keras.Model(digit, out)
    assert out.shape[-1] == 16
    assert layer_names(model)[1:] == [
        "flatten",
        *[f"classifier_{kind}{i}" for i in (1, 2) for kind in ("dense", "bn", "relu", "dropout")],
    ]
    bare = keras.Model(
        digit, DenseBody().classifier(digit, ModelSpec(model="cc_aux", hidden=(8,), batch_norm=False, dropout=0.0))
    )
    assert layer_names(bare)[1:] == ["flatten", "classifier_dense1", "classifier_relu1"]


def test_the_conv_body_pools_each_block_but_one_of_a_single_pixel():
    digit = keras.Input((14, 14, 1))
    spec = ModelSpec(model="cnn_aux", filters=(4, 8, 8, 8), convs=1, hidden=(16,))
    model = keras.Model(digit, ConvBody().classifier(digit, spec))
    pools = [layer.output.shape[1] for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert pools == [7, 3, 1]  # 14 -> 7 -> 3 -> 1, and a 4th block keeps its 1 x 1
    assert model.get_layer("block1_conv1").padding == "same"


def test_the_plain_models_see_the_pair_as_the_body_wants_it():
    pair = keras.Input((2, 14, 14))
    flat = keras.Model(pair, DenseBody().plain(pair, ModelSpec(model="mlp", hidden=(8,))))
    assert flat.get_layer("flatten").output.shape[-1] == 392
    image = keras.Model(pair, ConvBody().plain(pair, ModelSpec(model="cnn", filters=(4,), hidden=(8,))))
    assert image.get_layer("channels_last").output.shape[1:] == (14, 14, 2)
    assert "head_dense1" in layer_names(image)


def test_a_body_keeps_keras_defaults_and_hands_probabilities_unless_it_says_otherwise():
    for body in (DenseBody(), ConvBody()):
        assert isinstance(body, Body)
        assert body.init(100) == {}
        assert body.comparer_reads == "probabilities"
        assert body.fixed == ()
    with pytest.raises(NotImplementedError):
        Body().classifier(None, None)
