"""The report's six networks as its authors built them (../shared/report/architectures.md):
their parameters layer by layer, their layer order, PyTorch's pooling and initialisation,
the comparer's input, and the softmax over the batch kept out of every export."""

import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_models.core.errors import ConfigError, ModelFileError
from keras_models.models import architectures
from keras_models.models.bodies import DenseBody
from keras_models.models.builder import build_model, over_batch
from keras_models.models.pooling import PaddedMaxPooling2D
from keras_models.models.spec import ModelSpec
from keras_models.training.config import Config
from keras_models.training.recipes import recipe_changes

# architectures.md's counts, PyTorch's, less the batch-norm layers built and never called.
TRAINABLE = {"mlp": 547_785, "cc": 461_359, "cc_aux": 461_359, "cnn": 274_273, "cnn_cc": 285_091, "cnn_aux": 285_091}
UNCALLED_BN = {"mlp": 2, "cc": 20 + 362, "cc_aux": 20 + 362, "cnn": 0, "cnn_cc": 362, "cnn_aux": 362}
# Layer by layer, as architectures.md sums them.
MLP = {"dense1": 196_500, "bn1": 1_000, "dense2": 250_500, "bn2": 1_000, "dense3": 98_196, "bn3": 392}
CNN_FEATURES = {
    "block1_conv1": 608,  # two input channels in the plain CNN, one in the classifier (320)
    "block1_conv2": 9_248,
    "block1_bn": 64,
    "block2_conv1": 18_496,
    "block2_conv2": 36_928,
    "block2_bn": 128,
}
CNN_HEAD = {"dense1": 166_176, "bn1": 576, "dense2": 41_616, "bn2": 288}
COMPARER = {"comparer_dense1": 1_680, "comparer_dense2": 6_480, "comparer_dense3": 1_620, "compare": 21}


def trainable(layer) -> int:
    return sum(math.prod(w.shape) for w in layer.trainable_weights)


def report_model(name, **spec):
    return build_model(ModelSpec(model=name, network="report", **spec))


@pytest.mark.parametrize("name", TRAINABLE)
def test_each_network_has_the_reports_parameters_less_the_batch_norms_never_called(name):
    model = report_model(name)
    assert trainable(model) == TRAINABLE[name]
    assert TRAINABLE[name] + UNCALLED_BN[name] == architectures.get(name).report.params


@pytest.mark.parametrize("name", ["mlp", "cc", "cnn", "cnn_aux"])
def test_the_networks_count_layer_by_layer(name):
    model = report_model(name)
    arch = architectures.get(name)
    inner = model.get_layer("classifier") if arch.shared else model
    prefix = "classifier" if arch.shared else "head"
    if arch.family == "mlp":
        expected = {f"{prefix}_{k}": v for k, v in MLP.items()}
        if arch.shared:  # one digit, 196 values, against the plain MLP's pair of 392
            expected[f"{prefix}_dense1"] = 98_500
        expected["logits" if arch.shared else "compare"] = 1_970 if arch.shared else 197
    else:
        expected = {**CNN_FEATURES, **{f"{prefix}_{k}": v for k, v in CNN_HEAD.items()}}
        if arch.shared:
            expected.update(block1_conv1=320, logits=1_450)
        else:
            expected["compare"] = 145
    found = {layer.name: trainable(layer) for layer in inner.layers if layer.trainable_weights}
    assert found == expected
    if arch.shared:
        comparer = {layer.name: trainable(layer) for layer in model.layers if layer.name in COMPARER}
        assert comparer == COMPARER


def kinds(model) -> list[str]:
    """The classes of a model's layers, with a dropout's rate and a pool's stride."""
    out = []
    for layer in model.layers:
        kind = type(layer).__name__
        if isinstance(layer, keras.layers.Dropout):
            kind += f"({layer.rate})"
        if isinstance(layer, PaddedMaxPooling2D):
            kind += f"({layer.pool_size},{layer.strides},{layer.padding})"
        out.append(kind)
    return out


def test_layer_order_batch_norm_and_dropout_stand_where_the_authors_put_them():
    mlp_block = ["Dense", "FusedBatchNormalization", "Dropout(0.5)", "ReLU"]
    classifier = report_model("cc").get_layer("classifier")
    assert kinds(classifier) == ["InputLayer", "Flatten", *mlp_block * 3, "Dense"]

    conv = ["Conv2D", "ReLU", "Conv2D", "ReLU", "FusedBatchNormalization"]  # batch norm after the ReLU
    features = [*conv, "PaddedMaxPooling2D(2,1,0)", "Dropout(0.25)", *conv, "PaddedMaxPooling2D(2,2,1)"]
    features += ["Dropout(0.25)", "Flatten"]
    head = ["Dense", "FusedBatchNormalization", "ReLU", "Dropout(0.25)", "Dense", "FusedBatchNormalization", "ReLU"]
    cnn_classifier = report_model("cnn_cc").get_layer("classifier")
    assert kinds(cnn_classifier) == ["InputLayer", *features, "Dropout(0.5)", *head, "Dense"]
    # Valid convolutions: 14 -> 12 -> 10 -> 9 -> 7 -> 5 -> 3, so 576 features.
    sizes = [layer.output.shape[1] for layer in cnn_classifier.layers if layer.name.startswith("block")]
    assert sorted(set(sizes), reverse=True) == [12, 10, 9, 7, 5, 3]
    assert cnn_classifier.get_layer("flatten").output.shape[-1] == 576
    plain = report_model("cnn")
    assert kinds(plain)[:3] == ["InputLayer", "PixelNormalization", "Permute"]
    assert plain.get_layer("block1_conv1").kernel.shape == (3, 3, 2, 32)


def test_cc_hands_the_raw_logits_to_the_comparer_and_cnn_cc_its_softmax(embedded):
    from keras_models.data.images import make_pairs

    pairs = make_pairs(embedded[1].images, embedded[1].labels, 4, np.random.default_rng(0)).x
    for name, handed in (("cc", "comparer_input"), ("cnn_cc", "digit_probabilities")):
        model = report_model(name)
        seen = keras.Model(model.input, model.get_layer(handed).output)(pairs)
        logits = keras.Model(model.input, model.get_layer("batch_to_digits").output)(pairs)
        outputs = model(pairs)
        expected = logits if name == "cc" else (outputs["digit1"], outputs["digit2"])
        np.testing.assert_allclose(np.asarray(seen), np.concatenate([np.asarray(e) for e in expected], 1), atol=1e-6)
    assert not np.allclose(np.asarray(logits[0]).sum(1), 1.0)  # logits, not a distribution


def test_padded_pooling_is_pytorchs_max_pool_with_minus_infinity_padding():
    x = np.random.default_rng(0).normal(size=(3, 5, 5, 4)).astype("float32")  # negative values too
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    expected = np.stack(
        [
            np.stack([padded[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].max(axis=(1, 2)) for j in range(3)], 1)
            for i in range(3)
        ],
        1,
    )
    np.testing.assert_array_equal(np.asarray(PaddedMaxPooling2D(2, 2, 1)(x)), expected)
    same = np.asarray(keras.layers.MaxPooling2D(2, padding="same")(x))
    assert not np.array_equal(same, expected)  # Keras' own padding pools other windows
    assert PaddedMaxPooling2D(2, 1, 0)(np.zeros((1, 10, 10, 1), "float32")).shape == (1, 9, 9, 1)
    with pytest.raises(ValueError, match="padding"):
        PaddedMaxPooling2D(2, 2, 2)


def test_weights_start_as_pytorchs_default_initialisation():
    keras.utils.set_random_seed(0)
    model = report_model("cnn_cc")
    for name, fan_in in (("block1_conv2", 9 * 32), ("classifier_dense1", 576), ("logits", 144)):
        layer = model.get_layer("classifier").get_layer(name)
        for w in (layer.kernel, layer.bias):
            values = np.asarray(w)
            assert np.abs(values).max() <= 1 / math.sqrt(fan_in)
            assert np.abs(values).max() > 0.9 / math.sqrt(fan_in)  # uniform over the whole range, bias too
    assert np.abs(np.asarray(model.get_layer("comparer_dense2").kernel)).max() <= 1 / math.sqrt(80)


def test_the_report_recipe_builds_the_report_networks_and_the_named_recipes_the_projects():
    for name in TRAINABLE:
        assert recipe_changes("report", name)["network"] == "report"
        assert recipe_changes("report_early", name)["network"] == "report"
        assert "network" not in recipe_changes("fast", name)
    for recipe in ("sprint", "speedrun", "best", "stacked"):
        assert Config(model="cnn_aux", **recipe_changes(recipe, "cnn_aux")).spec.network == "project"
    assert Config().spec.network == "project"
    # An architecture registered without a report network keeps its own under the report recipe.
    arch = architectures.register(
        architectures.Architecture("plain_only", body=DenseBody(), shared=False, aux=False, hidden=(8,), epochs=2)
    )
    try:
        assert "network" not in recipe_changes("report", "plain_only")
        with pytest.raises(ConfigError, match="'plain_only' has no report network"):
            Config(model="plain_only", network="report")
    finally:
        architectures.unregister(arch.name)


def test_settings_the_fixed_networks_do_not_read_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="fixed layer by layer; it does not read --filters, --dropout"):
        Config(model="cnn_aux", network="report", filters=(16, 32), dropout=0.3)
    assert Config(model="cc_aux", network="report", hidden=(600, 600, 196)).spec.hidden_units == (600, 600, 196)
    assert Config(model="cc_aux", network="report").spec.hidden_units == (500, 500, 196)
    assert Config(model="cnn_cc", network="report").spec.hidden_units == (288, 144)


def test_the_softmax_over_the_batch_makes_a_pairs_answer_depend_on_its_batch_mates(embedded):
    from keras_models.data.images import make_pairs

    pairs = make_pairs(embedded[1].images, embedded[1].labels, 8, np.random.default_rng(0)).x
    for softmax, depends in (("batch", True), ("classes", False)):
        keras.utils.set_random_seed(0)
        model = report_model("cnn_aux", classifier_softmax=softmax)
        assert over_batch(model) is depends
        alone = np.asarray(model(pairs[:2], training=False)["compare"])
        beside = np.asarray(model(pairs, training=False)["compare"])[:2]
        assert bool(np.abs(alone - beside).max() > 1e-4) is depends, softmax


def test_the_softmax_over_the_batch_is_refused_where_nothing_reads_it_and_never_exported(tmp_path):
    with pytest.raises(ConfigError, match="needs a weight-sharing model whose comparer reads probabilities"):
        Config(model="cc_aux", network="report", classifier_softmax="batch")
    with pytest.raises(ConfigError, match="needs a weight-sharing model"):
        Config(model="cnn", network="report", classifier_softmax="batch")
    with pytest.raises(ConfigError, match="never exported; add --no-export"):
        Config(model="cnn_aux", network="report", classifier_softmax="batch")
    with pytest.raises(ConfigError, match="--tta"):
        Config(model="cnn_aux", classifier_softmax="batch", export=False, tta=True)
    with pytest.raises(ConfigError, match="--stack trains one plain model"):
        Config(model="cnn_aux", classifier_softmax="batch", export=False, stack=2)

    from keras_models.serving.export import export_saved_model

    model = report_model("cnn_aux", classifier_softmax="batch")
    with pytest.raises(ModelFileError, match="softmax runs over the batch"):
        export_saved_model(model, tmp_path / "saved_models", "cnn_aux")
    assert not (tmp_path / "saved_models" / "cnn_aux").exists()
    # export.py on such a .keras file: one line, exit 2, nothing written.
    model.save(tmp_path / "batch.keras")
    proc = subprocess.run(
        [sys.executable, "scripts/export.py", "--model-file", str(tmp_path / "batch.keras"), "--model", "cnn_aux"]
        + ["--export-dir", str(tmp_path / "exports")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "never exported" in proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "exports" / "cnn_aux").exists()


@pytest.mark.slow
def test_a_report_run_prints_its_trainable_parameters_and_the_reports_train_accuracy(tmp_path):
    from helpers import run_script

    argv = ["--model", "cnn_aux", "--recipe", "report", "--epochs", "2", "--pairs", "200", "--no-export"]
    proc = run_script("train.py", *argv, "--out", str(tmp_path), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "285,091 trainable parameters" in proc.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["trainable_params"] == 285_091
    assert results["config"]["spec"]["network"] == "report"
    history = (tmp_path / "round-00" / "history.csv").read_text().splitlines()
    columns, last = history[0].split(","), history[-1].split(",")
    running = float(last[columns.index("compare_accuracy")])
    assert results["rounds"][0]["running_train_accuracy"] == pytest.approx(running)
    assert results["running_train_accuracy_mean"] == pytest.approx(running)
    assert results["rounds"][0]["commit"]
