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


@pytest.mark.slow
def test_the_floor_of_table_i_adds_up_its_models_kernels():
    from experiments.floor import study_floor
    from experiments.study import MODELS

    lines = []
    floor = study_floor(rounds=2, epochs_scale=0.01, steps=5, warmup=2, reps=3, log=lines.append)
    rows = floor["models"]
    assert list(rows) == MODELS
    for row in rows.values():
        assert row["kernels_ms_per_step"] == min(row["kernels_ms_alone"], row["kernels_ms_stacked"]) > 0
        assert row["steps_per_round"] == row["epochs"] * 10  # 1000 pairs in batches of 100
        # The test curve is on by default: a round's kernels take longer with it.
        assert row["kernels_s_per_round"] > row["kernels_s_per_round_without_test_curve"] > 0
        assert row["keras_ms_per_step"] > 0
    assert floor["kernels_s"] == pytest.approx(2 * sum(r["kernels_s_per_round"] for r in rows.values()), abs=0.06)
    assert floor["steps"] == 2 * sum(r["steps_per_round"] for r in rows.values())
    assert f"its kernels alone take {floor['kernels_s']:.1f} s" in lines[-2]
