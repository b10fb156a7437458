"""The two runtimes of an export side by side (`benchmark.py --runtimes`): what each installs, the
seconds from a fresh process to its first answer, and pairs per second at batch 1 and 1000."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

# The distribution each runtime needs beyond the serving core (numpy, kserve), with what it pulls in.
RUNTIME_DISTRIBUTIONS = {"tensorflow": "tensorflow", "onnx": "onnxruntime"}
# What `import keras_models.serving.loaded` and a first answer cost, in a fresh process.
FIRST_ANSWER = (
    "import sys, numpy as np\n"
    "from keras_models.serving.loaded import load_version\n"
    "load_version(sys.argv[1], sys.argv[2]).run(np.zeros((1, 2, 14, 14), np.float32))\n"
)


def requirement_names(dist: metadata.Distribution) -> list[str]:
    """The distributions `dist` requires unconditionally (no extras, markers that hold here)."""
    from packaging.requirements import Requirement

    names = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.append(req.name)
    return names


def install_mb(name: str) -> float:
    """MB on disk of the installed distribution `name` and everything it requires, each once."""
    seen, todo, total = set(), [name], 0
    while todo:
        key = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(key)
        except metadata.PackageNotFoundError:
            continue
        total += sum(f.size or 0 for f in dist.files or [])
        todo += requirement_names(dist)
    return total / 1e6


def first_answer_seconds(path: Path, runtime: str, repeats: int = 3) -> float:
    """Median wall-clock of a fresh process that imports, loads `runtime`'s model and answers one pair."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", FIRST_ANSWER, str(path), runtime], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rates(export, calls: int = 20) -> dict:
    """Pairs per second at batch 1000 and the median milliseconds of one pair."""
    big = np.random.default_rng(0).uniform(0, 255, (1000, 2, 14, 14)).astype(np.float32)
    export.run(big)  # warm: the first call traces or plans at this size
    export.run(big[:1])
    start = time.perf_counter()
    for _ in range(calls):
        export.run(big)
    batch = 1000 * calls / (time.perf_counter() - start)
    one = []
    for i in range(10 * calls):
        t = time.perf_counter()
        export.run(big[i % 1000 : i % 1000 + 1])
        one.append(time.perf_counter() - t)
    return {"pairs_per_s_batch1000": round(batch, 1), "ms_batch1": round(1000 * statistics.median(one), 3)}


def compare_runtimes(path: Path) -> dict:
    """Each runtime on the same export (a version folder), one after the other."""
    from keras_models.serving.loaded import load_version

    result = {}
    for runtime, dist in RUNTIME_DISTRIBUTIONS.items():
        result[runtime] = {
            "install_mb": round(install_mb(dist), 1),
            "first_answer_s": round(first_answer_seconds(path, runtime), 2),
            **rates(load_version(path, runtime)),
        }
    return result


def measure_and_print(cfg) -> dict:
    """A fresh export of `cfg`'s model (untrained: the runtimes' cost does not depend on its
    weights), then compare_runtimes on it, printed a line a runtime."""
    import tempfile

    from keras_models.models.builder import build_model
    from keras_models.serving.export import export_saved_model

    with tempfile.TemporaryDirectory() as root:
        path = export_saved_model(build_model(cfg.spec, 33.0, 80.0**2), root, cfg.spec.model)
        result = compare_runtimes(path)
    for runtime, r in result.items():
        print(
            f"{runtime:10s} installs {r['install_mb']:7.1f} MB; a fresh process answers in "
            f"{r['first_answer_s']:.2f} s; {r['pairs_per_s_batch1000']:.0f} pairs/s at batch 1000, "
            f"{r['ms_batch1']:.3f} ms at batch 1"
        )
    return result
