"""The benchmark's arithmetic (its timings are measured, never asserted)."""
import json

import pytest

from helpers import run_script
from experiments.benchmark import flops_per_pair
from keras_models.config import Config
from keras_models.models import build_model


def test_flop_count_matches_the_pytorch_peer_formula():
    # torch_reference.py: per digit, convs 2*s*s*cout*cin*9 and dense 2*(576*256 + 256*10).
    convs = [(14, 1, 32), (14, 32, 32), (7, 32, 64), (7, 64, 64)]
    per_digit = sum(2 * s * s * cout * cin * 9 for s, cin, cout in convs) + 2 * (576 * 256 + 256 * 10)
    comparer = 2 * (20 * 80 + 80 * 80 + 80 * 20 + 20 * 1)
    assert flops_per_pair(build_model(Config(model="cnn_aux"))) == 2 * per_digit + comparer
    assert abs(2 * per_digit / 1e6 - 19) < 0.5  # "about 19 MFLOP per pair"


@pytest.mark.slow
def test_benchmark_script_prints_json_last():
    proc = run_script("benchmark.py", "--model", "mlp", "--steps", "3", "--warmup", "2", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"ms_per_step", "pairs_per_s", "gflops_per_s"} <= set(result)
    assert result["ms_per_step"] > 0 and result["pairs_per_s"] > 0


@pytest.mark.slow
def test_profile_reads_op_types_from_a_real_trace(tmp_path):
    from experiments.benchmark import profile_op_types
    from keras_models.models import compile_model

    cfg = Config(model="cnn_aux", filters=(4,), hidden=(8,), steps_per_execution=1)
    rows = profile_op_types(compile_model(build_model(cfg), cfg), batch=20, steps=3, logdir=tmp_path, warmup=2)
    types = {r["op_type"] for r in rows}
    assert {"Conv2DBackpropFilter", "MatMul"} <= types  # ops of a real training step
    assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=1e-3)
    assert list(tmp_path.glob("plugins/profile/*/*.xplane.pb"))  # the trace TensorBoard opens
