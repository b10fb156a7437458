"""What a timing ran on: the CPU's widest vector extension, and the kernel library as
TensorFlow reports it."""

import pytest

from keras_models.machine import cpu, cpu_flags, describe, onednn_enabled, summary, vector_extension

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
