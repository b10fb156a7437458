"""What a timing ran on: the CPU's widest vector extension, and the kernel library as
TensorFlow reports it."""

import json
import os
from pathlib import Path

import pytest
from helpers import run_python

from keras_models.core.machine import (
    bfloat16_in_hardware,
    cpu_flags,
    describe,
    summary,
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
    ("flags", "name"),
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
    assert model == "Intel(R) Xeon(R) Processor"
    assert vector_extension(flags) == "AMX"


def proc_cpuinfo() -> tuple[str, set[str]]:
    """The first processor's model name and flags, read here without the code under test."""
    text = Path("/proc/cpuinfo").read_text()
    model = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
    flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
    return model, set(flags)


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads /proc/cpuinfo")
def test_this_machine_is_described_as_it_is():
    machine = describe()
    assert machine["cpu"] == proc_cpuinfo()[0]
    assert machine["cpus"] == len(os.sched_getaffinity(0))
    model, flags = proc_cpuinfo()
    widest = vector_extension(flags)  # the naming itself is the table test's above
    assert machine["vector_extension"] == widest
    assert summary(machine) == f"{model} ({widest}), {machine['kernels']} kernels, {machine['cpus']} CPUs"


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "kernels"), [("0", "Eigen"), ("1", "oneDNN")])
def test_the_kernel_library_is_the_one_tensorflow_was_told_to_run(setting, kernels):
    code = "import json; from keras_models.core.machine import describe; print(json.dumps(describe()))"
    proc = run_python(["-c", code], TF_ENABLE_ONEDNN_OPTS=setting)
    assert proc.returncode == 0, proc.stderr[-2000:]
    machine = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (machine["kernels"], machine["onednn"]) == (kernels, setting == "1")


@pytest.mark.parametrize(
    ("flags", "onednn", "native"),
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
    # In hardware: oneDNN's kernels on a CPU with AMX or AVX-512 BF16 (the flags read here).
    native = onednn == "1" and bool(proc_cpuinfo()[1] & {"amx_bf16", "avx512_bf16"})
    assert len(notes) == (0 if native else 1)
