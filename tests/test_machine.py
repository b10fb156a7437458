"""What a timing ran on: the CPU's widest vector extension, and the kernel library as
TensorFlow reports it."""

import pytest

from keras_models.core.machine import (
    bfloat16_in_hardware,
    cpu,
    cpu_flags,
    describe,
    onednn_enabled,
    summary,
    this_cpu,
    vector_extension,
)

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse4_2 avx avx2 avx512f avx512_bf16 amx_tile amx_bf16
processor\t: 1
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse4_2 avx avx2 avx512f avx512_bf16 amx_tile amx_bf16
"""


@pytest.mark.parametrize(
    "flags, name",
    [
        ({"avx2", "avx512f", "amx_tile"}, "AMX"),
        ({"avx2", "avx512f"}, "AVX-512"),
        ({"avx", "avx2"}, "AVX2"),
        ({"sse4_2"}, "SSE4.2"),
        (set(), "unknown"),
    ],
)
def test_the_widest_vector_extension_is_named(flags, name):
    assert vector_extension(flags) == name


def test_cpuinfo_gives_the_first_processors_model_and_flags():
    model, flags = cpu_flags(XEON)
    assert model == "Intel(R) Xeon(R) Processor" and vector_extension(flags) == "AMX"


def test_this_machine_is_described_as_tensorflow_runs_it():
    machine = describe()
    assert machine["onednn"] is onednn_enabled() and machine["cpus"] >= 1
    assert machine["cpu"] == cpu()["cpu"] and machine["kernels"] in ("oneDNN", "Eigen")
    assert summary(machine).startswith(machine["cpu"])


@pytest.mark.parametrize(
    "flags, onednn, native",
    [
        ({"avx2", "amx_tile", "amx_bf16"}, True, True),
        ({"avx512f", "avx512_bf16"}, True, True),
        ({"avx512f", "amx_bf16"}, False, False),  # Eigen's kernels emulate bfloat16 on any CPU
        ({"avx2", "fma"}, True, False),
    ],
)
def test_bfloat16_counts_as_hardware_only_with_onednn_and_its_cpu_flags(flags, onednn, native):
    assert bfloat16_in_hardware(flags, onednn) is native


@pytest.mark.slow
@pytest.mark.parametrize("onednn", ["0", "1"])
def test_a_bfloat16_run_says_in_one_line_where_bfloat16_is_emulated(onednn, tmp_path):
    from helpers import run_script

    argv = ["--model", "mlp", "--hidden", "8", "--epochs", "1", "--pairs", "100", "--no-export"]
    argv += ["--precision", "mixed_bfloat16", "--out", str(tmp_path / "run")]
    proc = run_script("train.py", *argv, TF_ENABLE_ONEDNN_OPTS=onednn)
    assert proc.returncode == 0, proc.stderr[-2000:]
    notes = [line for line in (proc.stdout + proc.stderr).splitlines() if "emulates bfloat16" in line]
    assert len(notes) == (0 if bfloat16_in_hardware(this_cpu()[1], onednn == "1") else 1)
