"""The registry: the report's six by their declared traits, and a seventh architecture,
registered in one place, that trains, exports, serves and tunes like them."""

import json

import numpy as np
import pytest
from helpers import clean_env

from keras_models.core.errors import ConfigError
from keras_models.models import architectures
from keras_models.models.architectures import Architecture
from keras_models.models.bodies import ConvBody, DenseBody
from keras_models.models.builder import build_model, loss_weights
from keras_models.serving.local_server import free_port, post, row_request, start_server, wait_ready
from keras_models.training.config import Config


@pytest.fixture
def seventh():
    """A small cnn_aux, in the registry for one test."""
    arch = architectures.register(
        Architecture(
            "cnn_aux_small",
            body=ConvBody(),
            shared=True,
            aux=True,
            hidden=(16,),
            epochs=2,
            description="a small cnn_aux",
        )
    )
    yield arch
    architectures.unregister(arch.name)


def test_the_report_table_names_the_six_whatever_else_is_registered(seventh):
    names = [a.name for a in architectures.report_architectures()]
    assert names == ["mlp", "cc", "cc_aux", "cnn", "cnn_cc", "cnn_aux"]
    assert "cnn_aux_small" in architectures.NAMES
    assert "cnn_aux_small" not in names


def test_traits_are_declared_not_read_from_the_name():
    # A name that says aux and cnn, declared as a plain MLP, builds and trains as one.
    arch = architectures.register(
        Architecture("resnet_aux", body=DenseBody(), shared=False, aux=False, hidden=(8,), epochs=3)
    )
    try:
        cfg = Config(model="resnet_aux")
        model = build_model(cfg.spec)
        assert list(model.output) == ["compare"]
        assert loss_weights(cfg.spec) == {"compare": 1.0}
        assert cfg.num_epochs == 3
        assert cfg.spec.hidden_units == (8,)
        assert arch.outputs == ("compare",)
        assert not any("conv" in layer.name for layer in model.layers)
    finally:
        architectures.unregister("resnet_aux")
    with pytest.raises(ConfigError, match="unknown model 'resnet_aux'"):
        Config(model="resnet_aux")
    with pytest.raises(ConfigError, match="auxiliary digit losses need the shared classifier"):
        Architecture("bad", body=ConvBody(), shared=False, aux=True, hidden=(8,), epochs=1)
    with pytest.raises(ConfigError, match="registered already"):
        architectures.register(architectures.get("cnn_aux"))


@pytest.mark.slow
def test_a_seventh_architecture_trains_exports_serves_and_tunes(seventh, tmp_path, embedded):
    from keras_models.cli import export as export_script
    from keras_models.cli import train as train_script
    from keras_models.data.images import make_pairs
    from keras_models.models.saving import load_keras_model
    from keras_models.serving.export import load_saved_model
    from tuning.search import Search, search

    run, exports = tmp_path / "run", tmp_path / "saved_models"
    argv = [
        "--model",
        "cnn_aux_small",
        "--filters",
        "4",
        "--pairs",
        "100",
        "--out",
        str(run),
        "--export-dir",
        str(exports),
        "--quiet",
    ]
    assert train_script.main(argv) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["model"] == "cnn_aux_small"
    assert results["rounds_ok"] == 1
    assert results["config"]["spec"]["hidden"] is None
    assert len((run / "round-00" / "history.csv").read_text().splitlines()) == 3
    loaded = load_keras_model(run / "model.keras")
    assert "classifier" in [layer.name for layer in loaded.layers]  # get_layer would raise, not return None
    # export.py checks the file against the registered traits and the run's config.
    assert export_script.main(["--model-file", str(run / "model.keras"), "--export-dir", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "cnn_aux_small" / "1" / "saved_model.pb").is_file()

    # serve.py answers for it (its own process knows nothing of the registry entry).
    pairs = make_pairs(embedded[1].images, embedded[1].labels, 3, np.random.default_rng(0)).x
    port = free_port()
    proc = start_server(exports / "cnn_aux_small", port, tmp_path / "server.log", env=clean_env())
    try:
        url = f"http://127.0.0.1:{port}/v1/models/cnn_aux_small"
        wait_ready(url, proc)
        status, answer = post(url + ":predict", row_request(pairs))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    _, signature = load_saved_model(exports / "cnn_aux_small" / "1")
    expected = signature(pair=pairs)["compare"].numpy()
    assert status == 200
    np.testing.assert_allclose([p["compare"] for p in answer["predictions"]], expected, atol=1e-6)

    # tune.py searches it with the hypermodel of its body.
    base = Config(model="cnn_aux_small", pairs=100, validation_split=0.2, lr=1e-3, epochs=1, quiet=True)
    best = search(base, Search("random", 1, 1, str(tmp_path / "tune"), "p"), log=lambda *_: None)
    assert best["config"]["spec"]["model"] == "cnn_aux_small"
    assert "filters" in best["hyperparameters"]


def test_an_architecture_registered_by_a_named_module_is_known_to_every_process(tmp_path):
    from helpers import run_python

    (tmp_path / "my_archs.py").write_text(
        "from keras_models.models.architectures import Architecture, register\n"
        "from keras_models.models.bodies import ConvBody\n"
        "register(Architecture('cnn_aux_plugin', body=ConvBody(), shared=True, aux=True, hidden=(16,), epochs=2))\n"
    )
    code = "from keras_models.training.config import Config; print(Config(model='cnn_aux_plugin').arch.outputs)"
    env = {"PYTHONPATH": str(tmp_path), "KERAS_MODELS_ARCHITECTURES": "my_archs"}
    proc = run_python(["-c", code], **env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "('compare', 'digit1', 'digit2')"
    proc = run_python(["-c", code], KERAS_MODELS_ARCHITECTURES="no_such_module")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("keras_models: KERAS_MODELS_ARCHITECTURES names 'no_such")
