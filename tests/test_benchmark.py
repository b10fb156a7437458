"""The benchmark: its FLOP count against TensorFlow's, the script's output, and a real profile
(timings are measured, never asserted)."""

import json

import pytest
from helpers import run_script

from keras_models.models.builder import build_model
from keras_models.models.cost import flops_per_pair
from keras_models.training.config import Config


def tensorflow_flops(model) -> int:
    """TensorFlow's own count of the float operations of one pair through the model's frozen
    inference graph: an independent measure of what flops_per_pair counts by hand."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, 2, 14, 14], tf.float32)
    )
    options = {**tf.compat.v1.profiler.ProfileOptionBuilder.float_operation(), "output": "none"}
    graph = convert_variables_to_constants_v2(fn).graph
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


@pytest.mark.parametrize("name", ["mlp", "cc_aux", "cnn_aux"])
def test_flop_count_agrees_with_tensorflows_profiler(name):
    model = build_model(Config(model=name).spec)
    ours, theirs = flops_per_pair(model), tensorflow_flops(model)
    # The hand count takes the matmuls and convolutions only; TensorFlow adds the element-wise
    # ops (bias, batch norm, ReLU, softmax), about 1% here.
    assert 0.98 * theirs <= ours <= theirs


@pytest.mark.parametrize(
    ("op_type", "op"),
    [
        ("Conv2DBackpropFilter", "Conv2DBackpropFilter"),
        ("_MklNativeConv2DBackpropFilterWithBias", "Conv2DBackpropFilter"),
        ("_FusedConv2D", "Conv2D"),
        ("_MklNativeFusedConv2D", "Conv2D"),
        ("_MklMatMul", "MatMul"),
        ("_MklNativeFusedMatMul", "MatMul"),
        ("MatMul", "MatMul"),
        ("_MklSoftmax", "Softmax"),
        ("AddV2", "AddV2"),
    ],
)
def test_kernel_op_names_the_op_under_either_library(op_type, op):
    from experiments.profile import kernel_op

    assert kernel_op(op_type) == op


@pytest.mark.slow
def test_benchmark_script_prints_json_last():
    argv = ["--model", "mlp", "--steps", "3", "--warmup", "2", "--precision", "mixed_bfloat16", "--json"]
    proc = run_script("benchmark.py", *argv)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"ms_per_step", "pairs_per_s", "gflops_per_s"} <= set(result)
    assert result["ms_per_step"] > 0
    assert result["pairs_per_s"] > 0
    assert result["precision"] == "mixed_bfloat16"
    assert result["provenance"]["command"] == "python scripts/benchmark.py " + " ".join(argv)
    assert result["provenance"]["machines"]


def test_the_studys_arithmetic_counts_each_pair_four_times_an_epoch():
    from experiments.benchmark import study_arithmetic

    work = study_arithmetic()
    # The report's MLP by hand: 392 -> 500 -> 500 -> 196 -> 1, 2 FLOPs a multiply-add; 500 epochs
    # of the report's recipe, 1000 pairs trained (forward and backward: 3 passes) and 1000 test
    # pairs scored.
    mlp = 2 * (392 * 500 + 500 * 500 + 500 * 196 + 196 * 1) * 4 * 1000 * 500 / 1e12
    assert work["tflop_per_round"]["mlp"] == pytest.approx(mlp, rel=2e-3)
    assert set(work["tflop_per_round"]) == {"mlp", "cc", "cc_aux", "cnn", "cnn_cc", "cnn_aux"}
    assert work["total_tflop"] == pytest.approx(sum(work["tflop_per_round"].values()), abs=0.01)
    # Without the test curve: the three passes of training alone.
    assert work["training_tflop"] == pytest.approx(0.75 * work["total_tflop"], abs=0.01)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_the_convolution_breakdown_times_every_conv_at_the_models_dtype(precision):
    from experiments.profile import conv_breakdown

    cfg = Config(model="cnn_aux", filters=(4, 8), convs=1, precision=precision)
    rows = conv_breakdown(build_model(cfg.spec), batch=4, reps=2)
    assert [r["layer"] for r in rows] == ["block1_conv1", "block2_conv1"]
    assert [r["shape"] for r in rows] == ["14x14x1->4", "7x7x4->8"]
    assert {r["dtype"] for r in rows} == {"float32" if precision == "float32" else "bfloat16"}
    assert rows[0]["backprop_input"] == 0.0
    assert all(r["forward"] > 0 and r["backprop_filter"] > 0 for r in rows)
    assert rows[1]["backprop_input"] > 0


@pytest.mark.slow
def test_profile_reads_op_types_from_a_real_trace(tmp_path):
    from experiments.profile import profile_op_types
    from keras_models.core.machine import onednn_enabled
    from keras_models.training.compile import compile_for

    cfg = Config(model="cnn_aux", filters=(4,), hidden=(8,), steps_per_execution=1)
    rows = profile_op_types(compile_for(build_model(cfg.spec), cfg), batch=20, steps=3, logdir=tmp_path, warmup=2)
    # The kernels of a real training step, by the op they compute: oneDNN's carry other names.
    assert {"Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput", "MatMul"} <= {r["op"] for r in rows}
    onednn = any(r["op_type"].startswith("_Mkl") for r in rows)
    assert onednn == onednn_enabled()  # the trace shows the library that TensorFlow says it runs
    assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=1e-3)
    assert list(tmp_path.glob("plugins/profile/*/*.xplane.pb"))  # the trace TensorBoard opens


@pytest.mark.slow
def test_benchmark_reports_an_exports_cost_and_speed(tmp_path):
    """--saved-model: MFLOP per pair counted on the model that the export's metadata.json
    config builds, and its serving speed beside a fresh model's in the same run."""
    from keras_models.serving.export import export_saved_model

    cfg = Config(model="cnn_aux", filters=(8, 16), hidden=(16,))
    model = build_model(cfg.spec)
    export_saved_model(model, tmp_path, "cnn_aux", metadata={"config": cfg.to_groups()})
    proc = run_script(
        "benchmark.py",
        "--model",
        "cnn_aux",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--saved-model",
        str(tmp_path / "cnn_aux"),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    exported = json.loads(proc.stdout.strip().splitlines()[-1])["saved_model"]
    assert exported["saved_model"].endswith("cnn_aux/1")
    assert exported["mflops_per_pair"] == pytest.approx(flops_per_pair(model) / 1e6, abs=0.01)
    assert exported["serving_pairs_per_s_batch1000"] > 0
    assert exported["baseline_pairs_per_s_batch1000"] > 0
    export_saved_model(model, tmp_path, "bare")  # an export without a model card
    proc = run_script("benchmark.py", "--steps", "2", "--warmup", "1", "--saved-model", str(tmp_path / "bare"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("benchmark.py: error:")
    assert "no metadata.json" in proc.stderr


@pytest.mark.slow
def test_every_protocol_path_is_measured_beside_the_savedmodel_in_process():
    from experiments.serve_load import protocol_speeds

    speeds = protocol_speeds(Config(model="cnn_aux", filters=(4,), hidden=(8,)), batch=50, calls=2)
    assert set(speeds["ratios"]) == {"v1_json", "v2_json", "v2_binary", "grpc"}
    assert speeds["in_process"] > 0
    assert all(speeds[k] > 0 for k in speeds["ratios"])


def test_a_runtimes_install_size_counts_what_it_requires_once():
    from importlib import metadata

    from experiments.runtimes_speed import install_mb, requirement_names

    alone = sum(f.size or 0 for f in metadata.distribution("onnxruntime").files) / 1e6
    numpy = sum(f.size or 0 for f in metadata.distribution("numpy").files) / 1e6
    assert "numpy" in requirement_names(metadata.distribution("onnxruntime"))
    assert install_mb("onnxruntime") >= alone + numpy
    assert install_mb("tensorflow") > install_mb("onnxruntime")
    assert install_mb("no-such-distribution") == 0
