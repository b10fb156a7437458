"""The two runtimes of an export: ONNX Runtime answers its model.onnx as TensorFlow answers its
SavedModel, and does so in an environment set up from requirements-onnx.txt, where TensorFlow is
absent, through predict.py and every path of serve.py."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT, clean_env, in_process, tiny_model

from keras_models.core.errors import ModelFileError
from keras_models.serving.export import ONNX_FILE, export_saved_model
from keras_models.serving.loaded import load_version


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return export_saved_model(tiny_model(3), tmp_path_factory.mktemp("runtimes") / "saved_models", "cnn_aux")


def test_every_export_writes_an_onnx_model_that_answers_as_the_savedmodel(export, pool):
    assert (export / ONNX_FILE).is_file()
    tf_answers = load_version(export, "tensorflow").run(pool)
    onnx = load_version(export, "onnx")
    assert onnx.outputs == ("compare", "digit1", "digit2")
    assert onnx.runtime.platform == "onnxruntime_onnx"
    onnx_answers = onnx.run(pool)
    for k in tf_answers:
        np.testing.assert_allclose(onnx_answers[k], tf_answers[k], atol=1e-5)
    # An empty batch: empty outputs of the right shapes, as the SavedModel answers it.
    assert {k: v.shape for k, v in onnx.run(pool[:0]).items()} == {
        "compare": (0, 1),
        "digit1": (0, 10),
        "digit2": (0, 10),
    }


def test_a_missing_or_broken_onnx_model_is_one_line(export, tmp_path):
    import shutil

    copy = tmp_path / "1"
    shutil.copytree(export, copy)
    (copy / ONNX_FILE).write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="model.onnx: cannot load it") as e:
        load_version(copy, "onnx")
    assert "\n" not in str(e.value)
    (copy / ONNX_FILE).unlink()
    with pytest.raises(ModelFileError, match="no model.onnx"):
        load_version(copy, "onnx")


def test_a_bfloat16_export_writes_no_onnx_model_and_says_why(tmp_path):
    from keras_models.models.builder import build_model
    from keras_models.training.config import Config

    model = build_model(Config(model="cnn_aux", filters=(4, 8), hidden=(16,), precision="mixed_bfloat16").spec)
    path = export_saved_model(model, tmp_path, "cnn_aux")
    assert (path / "saved_model.pb").is_file()
    assert not (path / ONNX_FILE).exists()
    with pytest.raises(ModelFileError, match="an export in bfloat16"):
        load_version(path, "onnx")


@pytest.mark.slow
def test_a_trained_model_gives_the_same_answers_on_1000_test_pairs(tmp_path, embedded):
    from test_export import train_and_export

    from keras_models.data.images import make_pairs

    results = train_and_export(tmp_path, model="cnn_aux", filters=(8, 16), hidden=(32,), epochs=6, lr=1e-3)
    assert results["test_accuracy_mean"] > 0.6  # it learned: its answers are not all alike
    pairs = make_pairs(embedded[1].images, embedded[1].labels, 1000, np.random.default_rng(11)).x
    saved = load_version(results["export"]).run(pairs)
    onnx = load_version(results["export"], "onnx").run(pairs)
    for k in ("digit1", "digit2"):
        assert (saved[k].argmax(1) == onnx[k].argmax(1)).all()
    assert ((saved["compare"] > 0.5) == (onnx["compare"] > 0.5)).all()
    for k in saved:
        np.testing.assert_allclose(onnx[k], saved[k], atol=1e-5)


# --------------------------------------------------------------------------- without TensorFlow


@pytest.fixture(scope="module")
def onnx_python(tmp_path_factory):
    """A virtual environment set up from requirements-onnx.txt, as README says: its python."""
    venv = tmp_path_factory.mktemp("venv-onnx")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "-r", "requirements-onnx.txt"]
    done = subprocess.run(pip, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return venv / "bin" / "python"


@pytest.mark.slow
def test_the_onnx_environment_has_no_tensorflow_and_predict_answers_there(onnx_python, export, pool, tmp_path):
    code = "import importlib.util as u; print([m for m in ('tensorflow', 'keras', 'tf2onnx') if u.find_spec(m)])"
    done = subprocess.run([str(onnx_python), "-c", code], capture_output=True, text=True, env=clean_env())
    assert done.stdout.strip() == "[]", done.stderr
    np.save(tmp_path / "pairs.npy", pool[:20])
    argv = [str(onnx_python), str(ROOT / "scripts" / "predict.py"), str(export.parent), str(tmp_path / "pairs.npy")]
    done = subprocess.run([*argv, "--runtime", "onnx"], capture_output=True, text=True, env=clean_env(), cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    expected = in_process(export, pool[:20])
    np.testing.assert_allclose([r["compare"] for r in rows], expected["compare"][:, 0], atol=1e-5)
    assert [r["digit1"] for r in rows] == list(expected["digit1"].argmax(1))
    # The SavedModel's runtime is not there: one line, not a traceback.
    done = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), cwd="/")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "predict.py: error: the tensorflow runtime needs TensorFlow (requirements.txt); without it, give --runtime onnx"
    ]


@pytest.mark.slow
def test_every_protocol_path_answers_alike_from_the_onnx_environment(onnx_python, export, pool, tmp_path):
    """serve.py --runtime onnx without TensorFlow: V1 JSON, V2 JSON, V2 binary and gRPC give the
    SavedModel's answers, and the metadata names ONNX Runtime."""
    import tritonclient.grpc as grpc
    import tritonclient.http as http

    from keras_models.serving.local_server import free_port, post, row_request, start_server, wait_ready

    port, grpc_port = free_port(), free_port()
    log = tmp_path / "server.log"
    flags = ("--runtime", "onnx", "--host", "127.0.0.1", "--grpc-port", str(grpc_port))
    proc = start_server(export.parent, port, log, *flags, cwd=tmp_path, env=clean_env(), python=str(onnx_python))
    try:
        url = f"http://127.0.0.1:{port}/v1/models/cnn_aux"
        wait_ready(url, proc)
        pairs = pool[:6]
        expected = in_process(export, pairs)
        status, answer = post(url + "/versions/1:predict", row_request(pairs))
        assert status == 200
        np.testing.assert_allclose([p["compare"] for p in answer["predictions"]], expected["compare"], atol=1e-5)
        rest, rpc = f"127.0.0.1:{port}", f"127.0.0.1:{grpc_port}"
        for lib, where, binary in ((http, rest, False), (http, rest, True), (grpc, rpc, None)):
            client = lib.InferenceServerClient(where)
            tensor = lib.InferInput("pair", list(pairs.shape), "FP32")
            tensor.set_data_from_numpy(pairs, **({} if binary is None else {"binary_data": binary}))
            result = client.infer("cnn_aux", [tensor], model_version="1")
            for k in expected:
                np.testing.assert_allclose(result.as_numpy(k), expected[k], atol=1e-5)
            meta = client.get_model_metadata("cnn_aux", **({"as_json": True} if binary is None else {}))
            assert meta["platform"] == "onnxruntime_onnx"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert "Traceback" not in log.read_text()
