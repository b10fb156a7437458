"""The SavedModel contract: layout, signature, atomic export, predict.py, and bad input."""

import json
import os

import numpy as np
import pytest
from helpers import run_python, run_script

from keras_models.models.builder import build_model
from keras_models.models.saving import atomic_save_model, load_keras_model
from keras_models.serving.export import ModelFileError, export_saved_model, load_saved_model
from keras_models.serving.predict import load_image
from keras_models.training.config import Config


@pytest.fixture(scope="module")
def pairs(embedded):
    from keras_models.data.images import make_pairs

    _, test = embedded
    return make_pairs(test.images, test.labels, 32, np.random.default_rng(3))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An untrained cnn_cc exported twice: its two versions, and the model itself, saved with
    its config.json as a run folder holds them."""
    from keras_models.training.config import save_config

    root = tmp_path_factory.mktemp("serving")
    cfg = Config(model="cnn_cc", filters=(8, 16), hidden=(32,))
    model = build_model(cfg.spec, 33.0, 80.0**2)
    atomic_save_model(model, root / "model.keras")
    save_config(cfg, root / "config.json")
    first = export_saved_model(model, root / "saved_models")
    second = export_saved_model(model, root / "saved_models")
    return root, model, first, second


def train_and_export(tmp_path, **settings) -> dict:
    """train.py's run in process: one round of `settings`, its folder and exports in tmp_path."""
    from keras_models.training.run import run

    out = {"out": str(tmp_path / "run"), "export_dir": str(tmp_path / "saved_models"), "quiet": True}
    return run(Config(**settings, **out), log=lambda *_: None)


def test_versions_are_numbered_and_nothing_is_left_behind(exported):
    root, _, first, second = exported
    assert first == root / "saved_models" / "cnn_cc" / "1"
    assert second == root / "saved_models" / "cnn_cc" / "2"
    assert sorted(p.name for p in (root / "saved_models" / "cnn_cc").iterdir()) == ["1", "2"]


def test_signature_is_the_serving_contract(exported):
    _, _, first, _ = exported
    _, sig = load_saved_model(first)
    args, kwargs = sig.structured_input_signature
    assert args == ()
    assert list(kwargs) == ["pair"]
    assert kwargs["pair"].shape.as_list() == [None, 2, 14, 14]
    assert kwargs["pair"].dtype.name == "float32"
    outputs = {k: v.shape.as_list() for k, v in sig.structured_outputs.items()}
    assert outputs == {"compare": [None, 1], "digit1": [None, 10], "digit2": [None, 10]}


def test_bad_inputs_leave_the_loaded_model_answering(exported, pairs):
    import tensorflow as tf

    _, model, first, _ = exported
    _, sig = load_saved_model(first)
    for bad in (
        np.zeros((3, 14, 14), np.float32),
        np.zeros((3, 2, 28, 28), np.float32),
        np.zeros((3, 2, 14, 14), np.int32),
        np.zeros((3, 2, 14, 14), np.float64),
    ):
        with pytest.raises(tf.errors.InvalidArgumentError, match="to be a float tensor|is not compatible"):
            sig(pair=tf.constant(bad))
    for bad in (np.full((1, 2, 14, 14), np.nan, np.float32), np.full((1, 2, 14, 14), np.inf, np.float32)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="pair holds NaN or infinite pixels"):
            sig(pair=tf.constant(bad))
    # Documented answers: an empty batch gives empty outputs; pixels outside 0-255 are
    # answered like any other real numbers (the probabilities stay probabilities).
    empty = sig(pair=tf.zeros((0, 2, 14, 14)))
    assert empty["compare"].shape == (0, 1)
    assert empty["digit1"].shape == (0, 10)
    big = sig(pair=tf.constant(np.full((2, 2, 14, 14), 1e4, np.float32)))["compare"].numpy()
    assert np.isfinite(big).all()
    assert ((big >= 0) & (big <= 1)).all()
    # ... and after all that, a valid batch still gets the Keras model's answer.
    served = sig(pair=tf.constant(pairs.x))
    expected = model.predict(pairs.x, verbose=0)
    for key in expected:
        np.testing.assert_allclose(served[key].numpy(), expected[key], atol=1e-5)


# Loads a SavedModel with TensorFlow alone and answers the first 0, 1 and all pairs of an .npy
# file; prints the kernel library TensorFlow chose, the output shapes and the answers to all.
ANSWER_BATCHES = r"""
import json, sys
import numpy as np, tensorflow as tf
from tensorflow.python.util import _pywrap_util_port
sig = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
pairs = np.load(sys.argv[2])
out = {n: {k: v.numpy() for k, v in sig(pair=tf.constant(pairs[:n])).items()} for n in (0, 1, len(pairs))}
print(json.dumps({"onednn": bool(_pywrap_util_port.IsMklEnabled()),
                  "shapes": {n: {k: list(v.shape) for k, v in o.items()} for n, o in out.items()},
                  "answers": {k: v.tolist() for k, v in out[len(pairs)].items()}}))
"""


@pytest.mark.slow
def test_an_export_answers_alike_under_both_kernel_libraries(exported, pairs, tmp_path):
    """oneDNN's convolutions fail on an empty batch where Eigen's answer; the signature gives
    both the same empty outputs, and the same answers otherwise, whatever the CPU's default."""
    _, _, first, _ = exported
    np.save(tmp_path / "pairs.npy", pairs.x)
    found = {}
    for setting in ("0", "1"):
        proc = run_python(
            ["-c", ANSWER_BATCHES, str(first), str(tmp_path / "pairs.npy")], TF_ENABLE_ONEDNN_OPTS=setting
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        found[setting] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["0"]["onednn"] is False
    assert found["1"]["onednn"] is True
    for f in found.values():
        for n in (0, 1, len(pairs.x)):
            assert f["shapes"][str(n)] == {"compare": [n, 1], "digit1": [n, 10], "digit2": [n, 10]}
    for key, off in found["0"]["answers"].items():
        np.testing.assert_allclose(found["1"]["answers"][key], off, atol=1e-4)


def test_truncated_saved_model_is_one_line(exported, tmp_path):
    import shutil

    _, _, first, _ = exported
    broken = tmp_path / "broken"
    shutil.copytree(first, broken)
    pb = broken / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="cannot load the SavedModel"):
        load_saved_model(broken)
    with pytest.raises(ModelFileError, match="not a SavedModel folder"):
        load_saved_model(tmp_path)


def test_loading_what_is_not_a_model(tmp_path):
    (tmp_path / "notes.keras").write_text("hello")
    with pytest.raises(ModelFileError, match="not a Keras model file"):
        load_keras_model(tmp_path / "notes.keras")
    with pytest.raises(ModelFileError, match="no such model file"):
        load_keras_model(tmp_path / "missing.keras")


def test_interrupted_export_leaves_no_version(tmp_path, monkeypatch):
    import keras_models.serving.export as export

    model = build_model(Config(model="mlp", hidden=(8,)).spec)
    real_write = export.write_saved_model

    def killed_half_way(model, path):
        real_write(model, path)
        (path / "saved_model.pb").unlink()  # as if the process died before the last file
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "write_saved_model", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        export.export_saved_model(model, tmp_path)
    assert list((tmp_path / "mlp").iterdir()) == []
    monkeypatch.setattr(export, "write_saved_model", real_write)
    assert export.export_saved_model(model, tmp_path).name == "1"


def test_an_export_killed_mid_way_is_cleared_by_the_next_and_a_live_one_is_not(tmp_path):
    import subprocess
    import sys

    model = build_model(Config(model="mlp", hidden=(8,)).spec)
    base = tmp_path / "mlp"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = base / f".tmp-1-{int(gone.stdout)}"  # a process that has ended
    live = base / f".tmp-1-{os.getpid()}-other"  # not of the form .tmp-<version>-<pid>: kept
    running = base / f".tmp-7-{os.getppid()}"  # a process that runs
    for folder in (stale, live, running):
        folder.mkdir(parents=True)
        (folder / "saved_model.pb").write_bytes(b"half")
    assert export_saved_model(model, tmp_path).name == "1"
    assert not stale.exists()
    assert live.exists()
    assert running.exists()


def test_a_keras_file_with_a_lambda_is_refused_naming_safe_mode(tmp_path):
    import keras

    pair = keras.Input((2, 14, 14), name="pair")
    scaled = keras.layers.Lambda(lambda x: x / 255.0, name="scale")(pair)
    compare = keras.layers.Dense(1, activation="sigmoid", name="compare")(keras.layers.Flatten()(scaled))
    keras.Model(pair, {"compare": compare}).save(tmp_path / "lambda.keras")
    with pytest.raises(ModelFileError, match=r"holds Lambda layers \(scale\).*safe_mode=True") as e:
        load_keras_model(tmp_path / "lambda.keras")
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_export_script_and_wrong_architecture(exported, tmp_path):
    root, _, _, _ = exported
    proc = run_script("export.py", "--model-file", str(root / "model.keras"), "--export-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "cnn_cc" / "1" / "saved_model.pb").is_file()
    # The card of the run goes with it, so that benchmark.py --saved-model and the server read it.
    card = json.loads((tmp_path / "cnn_cc" / "1" / "metadata.json").read_text())
    assert card["model"] == "cnn_cc"
    assert card["pixel_range"] == [0.0, 255.0]
    assert card["config"]["spec"]["filters"] == [8, 16]
    # A .keras file with no run above it names its architecture, or is refused in one line.
    alone = tmp_path / "alone" / "model.keras"
    alone.parent.mkdir()
    alone.write_bytes((root / "model.keras").read_bytes())
    proc = run_script("export.py", "--model-file", str(alone), "--export-dir", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("name it with --model")
    proc = run_script(
        "export.py", "--model-file", str(root / "model.keras"), "--model", "mlp", "--export-dir", str(tmp_path)
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("holds a cnn_cc model, not mlp")
    assert sorted(p.name for p in (tmp_path / "cnn_cc").iterdir()) == ["1"]


@pytest.mark.slow
def test_predict_script(exported, pairs, tmp_path):
    from PIL import Image

    root, model, first, _ = exported
    np.save(tmp_path / "pairs.npy", pairs.x[:5])
    proc = run_script("predict.py", str(first), str(tmp_path / "pairs.npy"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    expected = model.predict(pairs.x[:5], verbose=0)
    assert len(rows) == 5
    for row, p, d1 in zip(rows, expected["compare"][:, 0], expected["digit1"], strict=False):
        assert row["compare"] == pytest.approx(float(p), abs=1e-5)
        assert row["leq"] == (p >= 0.5)
        assert row["digit1"] == int(np.argmax(d1))
    # Two images of any size, RGB and grayscale, black on white.
    digit = np.kron(255 - pairs.x[0, 0], np.ones((4, 4))).astype(np.uint8)  # 56x56
    Image.fromarray(digit).convert("RGB").save(tmp_path / "a.png")
    Image.fromarray(digit).save(tmp_path / "b.jpg")
    proc = run_script("predict.py", str(first), str(tmp_path / "a.png"), str(tmp_path / "b.jpg"), "--invert")
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout.strip())
    assert set(row) == {"compare", "leq", "digit1", "digit2", "digit1_confidence", "digit2_confidence"}
    assert row["digit1"] == row["digit2"]  # the same digit twice (JPEG noise aside)
    # A blank image is a valid digit: answered, as the blank digit the model gets in process, with a warning.
    Image.fromarray(np.full((56, 56), 255, np.uint8)).save(tmp_path / "blank.png")
    proc = run_script("predict.py", str(first), str(tmp_path / "a.png"), str(tmp_path / "blank.png"), "--invert")
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout.strip())
    blank = np.stack([load_image(tmp_path / "a.png", True), np.zeros((14, 14), np.float32)])[None]
    assert row["compare"] == pytest.approx(float(model.predict(blank, verbose=0)["compare"][0, 0]), abs=1e-5)
    warned = [line for line in proc.stderr.splitlines() if line.startswith("predict.py: warning:")]
    assert len(warned) == 1
    assert "blank.png: no ink" in warned[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.npy", "no such file"),
        (lambda d: (np.save(d / "w.npy", np.zeros((2, 14, 14))), d / "w.npy")[1], "must have shape (N, 2, 14, 14)"),
        (lambda d: ((d / "x.png").write_bytes(b"not a png"), d / "x.png")[1], "cannot decode the image"),
    ],
)
def test_predict_bad_input_is_one_line(exported, tmp_path, make, message):
    _, _, first, _ = exported
    path = make(tmp_path)
    args = [str(path)] if path.suffix == ".npy" else [str(path), str(path)]
    proc = run_script("predict.py", str(first), *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_export_checks_the_contract_not_only_the_name(tmp_path):
    import keras

    from keras_models.models import architectures
    from keras_models.serving.export import check_contract

    x = keras.Input((2, 14, 14), name="pair")
    one_layer = keras.Model(x, keras.layers.Dense(1)(keras.layers.Flatten()(x)), name="cnn_aux")
    with pytest.raises(ModelFileError, match="outputs"):
        check_contract(one_layer, "one.keras", architectures.get("cnn_aux"))
    pair = keras.Input((2, 28, 28), name="pair")
    other_shape = keras.Model(pair, {"compare": keras.layers.Dense(1)(keras.layers.Flatten()(pair))}, name="cnn")
    with pytest.raises(ModelFileError, match=r"not pair \(N, 2, 14, 14\)"):
        check_contract(other_shape, "other.keras", architectures.get("cnn"))
    cfg = Config(model="cnn_cc", filters=(8, 16), hidden=(32,))
    model = build_model(cfg.spec, 33.0, 80.0**2)
    check_contract(model, "model.keras", cfg.arch, cfg.spec)  # the real thing passes
    with pytest.raises(ModelFileError, match="layers differ"):
        check_contract(model, "model.keras", cfg.arch, cfg.replace(hidden=(64,)).spec)


@pytest.mark.slow
def test_a_trained_export_carries_its_card_and_refuses_pixels_on_another_scale(tmp_path, pairs):
    from keras_models.serving.export import read_metadata

    results = train_and_export(tmp_path, model="cc_aux", hidden=(16,), comparer=(8,), epochs=1, pairs=100)
    card = read_metadata(results["export"])
    assert card["model"] == "cc_aux"
    assert card["config"]["spec"]["hidden"] == [16]
    assert card["config"]["recipe"]["epochs"] == 1
    assert set(card["config"]) == {"spec", "recipe", "run"}  # saved as every Config is saved
    assert card["test_accuracy_mean"] == results["test_accuracy_mean"]
    assert card["pixel_range"] == [0.0, 255.0]
    assert {"tensorflow", "keras", "numpy"} <= set(card["versions"])
    assert card["run_folder"].endswith("run")
    np.save(tmp_path / "scaled.npy", pairs.x / 255.0)
    proc = run_script("predict.py", str(tmp_path / "saved_models" / "cc_aux"), str(tmp_path / "scaled.npy"))
    assert proc.returncode == 2
    assert "multiply them by 255" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_no_cuinit_error_line_on_a_machine_without_a_gpu(exported, pairs, tmp_path):
    """The commands hide TensorFlow's start-up ERROR line about a missing GPU ("failed call to
    cuInit") on a machine with no NVIDIA driver, and keep it where a driver is, since there it
    is news: the log level they set says which. The lines TensorFlow writes while it is
    imported are held back everywhere (keras_models/cli/quiet.py)."""
    import os
    import subprocess
    import sys

    driver = os.path.exists("/dev/nvidiactl")
    level = subprocess.run(
        [sys.executable, "-c", "import os, keras_models.cli; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"],
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
        capture_output=True,
        text=True,
    )
    assert level.stdout.strip() == ("2" if driver else "3")

    _, _, first, _ = exported
    np.save(tmp_path / "p.npy", pairs.x[:2])
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
    proc = subprocess.run(
        [sys.executable, "-m", "keras_models.cli.predict", str(first), str(tmp_path / "p.npy")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    if not driver:
        # Nor the lines TensorFlow writes while it is imported (absl's, "Could not find cuda drivers").
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("predict.py: done in")


@pytest.mark.slow
def test_a_mixed_bfloat16_run_exports_a_float32_contract_answered_in_a_fresh_process(tmp_path, pairs):
    from keras_models.serving.export import read_metadata

    settings = {"filters": (8, 16), "hidden": (32,), "epochs": 5, "lr": 3e-3, "pairs": 500, "batch_size": 50}
    results = train_and_export(tmp_path, model="cnn_aux", precision="mixed_bfloat16", **settings)
    assert read_metadata(results["export"])["config"]["spec"]["precision"] == "mixed_bfloat16"
    assert results["rounds"][0]["digit_test_accuracy"] > 0.7  # it learned, in bfloat16 (float32: 0.88)
    _, sig = load_saved_model(results["export"])
    assert {v.dtype.name for v in sig.structured_outputs.values()} == {"float32"}
    np.save(tmp_path / "pairs.npy", pairs.x[:8])
    proc = run_script("predict.py", str(results["export"]), str(tmp_path / "pairs.npy"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = load_keras_model(tmp_path / "run" / "model.keras").predict(pairs.x[:8], verbose=0)["compare"][:, 0]
    answered = [json.loads(line)["compare"] for line in proc.stdout.strip().splitlines()]
    np.testing.assert_allclose(answered, expected, atol=1e-5)


@pytest.mark.slow
def test_predict_falls_back_from_a_broken_or_empty_newest_version(exported, pairs, tmp_path):
    import shutil

    root, _, _, _ = exported
    base = tmp_path / "cnn_cc"
    shutil.copytree(root / "saved_models" / "cnn_cc", base)
    (base / "3").mkdir()  # empty
    (base / "4").mkdir()
    (base / "4" / "saved_model.pb").write_bytes(b"not a SavedModel")  # broken
    np.save(tmp_path / "pairs.npy", pairs.x[:2])
    proc = run_script("predict.py", str(base), str(tmp_path / "pairs.npy"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.strip().splitlines()) == 2
    skipped = [line for line in proc.stderr.splitlines() if line.startswith("predict.py: skipping version")]
    assert [line.split(":")[1].strip() for line in skipped] == ["skipping version 4", "skipping version 3"]
    proc = run_script("predict.py", str(tmp_path / "nonexistent"), str(tmp_path / "pairs.npy"))
    assert proc.returncode == 2
    assert f"predict.py: error: {tmp_path / 'nonexistent'}: no such folder" in proc.stderr
