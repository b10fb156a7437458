"""What a timing ran on: TensorFlow's kernel library, the CPU and its widest vector extension,
and TensorFlow's thread counts. Every round and every benchmark records it beside its seconds,
because the same code runs about 2.7x faster on a CPU with AMX, where TensorFlow turns its
oneDNN kernels on by itself, than on one with AVX2 only, where it leaves them off."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

# Widest first: the first flag of /proc/cpuinfo found names the extension.
VECTOR_FLAGS = (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"))


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its oneDNN kernels, as TensorFlow itself decides: from
    TF_ENABLE_ONEDNN_OPTS when it is set, else from the CPU (on with AVX-512 or AMX). This is
    the switch behind TensorFlow's start-up line "oneDNN custom operations are on"; it has no
    public API, so None when the private function is gone."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def cpu_flags(cpuinfo: str) -> tuple[str, set[str]]:
    """(model name, flags) of the first processor in a /proc/cpuinfo text."""
    model, flags = "", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def vector_extension(flags: set[str]) -> str:
    return next((name for flag, name in VECTOR_FLAGS if flag in flags), "unknown")


# CPU flags of bfloat16 arithmetic in hardware, which only oneDNN's kernels use; Eigen's emulate it.
BFLOAT16_FLAGS = {"amx_bf16", "avx512_bf16"}


def this_cpu() -> tuple[str, set[str]]:
    """(model name, flags) of this machine's CPU; empty where /proc/cpuinfo is not there."""
    path = Path("/proc/cpuinfo")
    return cpu_flags(path.read_text()) if path.is_file() else ("", set())


def bfloat16_in_hardware(flags: set[str] | None = None, onednn: bool | None = None) -> bool:
    """Whether a CPU's bfloat16 steps can beat float32 ones: oneDNN's kernels on a CPU with AMX or
    AVX-512 BF16 (by default this machine's flags and kernel library)."""
    flags = this_cpu()[1] if flags is None else flags
    onednn = onednn_enabled() if onednn is None else onednn
    return bool(onednn) and bool(flags & BFLOAT16_FLAGS)


def visible_cpus() -> int:
    """The CPUs this process may run on (its affinity), which a container may narrow."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu() -> dict:
    """The CPU's model and widest vector extension; "unknown" where /proc/cpuinfo is not there."""
    model, flags = this_cpu()
    return {
        "cpu": model or platform.processor() or "unknown",
        "vector_extension": vector_extension(flags),
        "cpus": visible_cpus(),
    }


def describe() -> dict:
    """What ran, as one dict: kernel library, CPU, vector extension, visible CPUs and TensorFlow's
    intra- and inter-op thread counts (0: TensorFlow's default, which sizes both from the cores)."""
    import tensorflow as tf

    onednn = onednn_enabled()
    return {
        "kernels": "unknown" if onednn is None else ("oneDNN" if onednn else "Eigen"),
        "onednn": onednn,
        **cpu(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def summary(machine: dict) -> str:
    """One line for a log or a table: 'Intel(R) Xeon(R) Processor (AMX), oneDNN, 2 CPUs'."""
    return f"{machine['cpu']} ({machine['vector_extension']}), {machine['kernels']} kernels, {machine['cpus']} CPUs"


@functools.cache
def code_version() -> str:
    """The code this process runs: the git commit of the checkout it was imported from ("+dirty"
    when its tracked files differ from it), or the installed package's version outside a
    checkout. Read once, when first asked, as the code a process imports stays what it was."""
    here = Path(__file__).resolve().parent

    def git(*args):
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "--short=7", "HEAD")
        if head.returncode == 0:
            dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
            return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("keras-digit-pairs")
    except PackageNotFoundError:
        return "unknown"


def provenance(command: str | None, commits: list[str] | None = None, machines: list[str] | None = None) -> dict:
    """What every results file records of its figures: the machine and kernel library they ran on
    (`summary` lines), the date it was written, the commits of the code that ran them and the
    command that wrote it. A study's rounds may have run earlier, on other code or machines: it
    passes the ones its rounds recorded; by default, this process's."""
    from datetime import datetime, timezone

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "commits": sorted(set(commits)) if commits is not None else [code_version()],
        "machines": sorted(set(machines)) if machines is not None else [summary(describe())],
    }
