"""Serving speed and training memory: an exported or freshly built model's pairs per second and
latency through its SavedModel signature, and the peak memory of a training process."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import numpy as np

from keras_models.models.builder import build_model
from keras_models.training.config import Config, config_mflops

from .benchmark import synthetic_pairs


def serving_speed(cfg: Config, batch: int = 1000, calls: int = 20, latency_calls: int = 200) -> dict:
    """A fresh (untrained) model of `cfg`, exported and loaded as a SavedModel."""
    import tensorflow as tf

    from keras_models.serving.export import export_saved_model

    model = build_model(cfg.spec, 33.0, 80.0**2)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_saved_model(model, tmp)
        return signature_speed(
            tf.saved_model.load(str(path)).signatures["serving_default"], batch, calls, latency_calls
        )


def saved_model_speed(path, batch: int = 1000, calls: int = 20, latency_calls: int = 200) -> dict:
    """An exported model (a base path: its newest version that loads, as the server serves it):
    its MFLOP per pair, counted on the model its metadata.json config builds, and its serving
    speed."""
    from keras_models.core.errors import ModelFileError
    from keras_models.serving.loaded import load_export
    from keras_models.training.config import card_config

    export = load_export(path)
    path, sig = export.path, export.handle[1]
    config = card_config(export.card)
    if config is None:
        raise ModelFileError(f"{path}: no metadata.json with the model's config beside it; export it with export.py")
    return {
        "saved_model": str(path),
        "mflops_per_pair": round(config_mflops(config), 2),
        **signature_speed(sig, batch, calls, latency_calls),
    }


def signature_speed(sig, batch: int, calls: int, latency_calls: int) -> dict:
    import tensorflow as tf

    big = tf.constant(synthetic_pairs(batch).x)
    one = tf.constant(synthetic_pairs(1).x)
    for _ in range(3):
        sig(pair=big), sig(pair=one)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        sig(pair=big)
        times.append(time.perf_counter() - t)
    lat = []
    for _ in range(latency_calls):
        t = time.perf_counter()
        sig(pair=one)
        lat.append(time.perf_counter() - t)
    return {
        "serving_pairs_per_s_batch1000": round(batch / float(np.median(times)), 1),
        "serving_ms_batch1": round(1000 * float(np.median(lat)), 3),
    }


# Runs a module as __main__ and reports the peak resident memory of its own process: the
# children's figure of getrusage would mix in every earlier child (the PyTorch peer's too).
PEAK_WRAPPER = """
import resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as e:
    if e.code:
        raise
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def train_peak_memory_mb(model: str, epochs: int = 3) -> float:
    """Peak resident memory of a real `train.py` process."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                PEAK_WRAPPER,
                "keras_models.cli.train",
                "--model",
                model,
                "--epochs",
                str(epochs),
                "--out",
                f"{tmp}/run",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            cwd=tmp,
        )
        peak = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("PEAK_KB")]
        if proc.returncode != 0 or not peak:
            raise RuntimeError(f"train.py failed: {proc.stderr.strip().splitlines()[-1:]}")
    return round(int(peak[0]) / 1024, 1)
