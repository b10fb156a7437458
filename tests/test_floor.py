"""The kernel floor (experiments/floor.py): a step's kernels are the model's own Conv2D and Dense
layers, at their shapes, with the shared classifier's on both digits."""

import keras
import pytest

from experiments.floor import kernel_layers, step_kernels
from keras_models.models.builder import build_model
from keras_models.training.config import Config


@pytest.mark.parametrize("model", ["mlp", "cnn_aux"])
def test_a_step_runs_three_kernels_per_layer_at_its_shapes(model):
    net = build_model(Config(model=model, hidden=(16,), filters=(4, 8), comparer=(8,)).spec)
    layers = kernel_layers(net)
    weighted = [w for w in net.layers if isinstance(w, (keras.layers.Conv2D, keras.layers.Dense))]
    if model == "cnn_aux":
        weighted += [w for w in net.get_layer("classifier").layers if isinstance(w, keras.layers.Conv2D)]
    assert {id(w) for w in weighted} <= {id(w) for w, _ in layers}
    outputs = step_kernels(net, 5, training=True)()
    # Forward, input gradient and kernel gradient per layer; the first layer's input is data.
    assert len(outputs) == 3 * len(layers) - 1
    layer, images = layers[1]
    forward, to_input, to_kernel = outputs[2:5]
    assert tuple(forward.shape) == (5 * images, *layer.output.shape[1:])
    assert tuple(to_input.shape) == (5 * images, *layer.input.shape[1:])
    assert tuple(to_kernel.shape) == tuple(layer.kernel.shape)
    # The classifier runs on both digits: twice the images of the pair's layers.
    assert {n for _, n in layers} == ({1, 2} if model == "cnn_aux" else {1})
    assert len(step_kernels(net, 7, training=False)()) == len(layers)


def test_the_floor_takes_a_positive_epochs_scale(capsys):
    from experiments.cli.benchmark import main

    with pytest.raises(SystemExit) as e:
        main(["--floor", "0"])
    assert e.value.code == 2
    assert "expected a positive number" in capsys.readouterr().err
