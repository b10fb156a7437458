"""Helpers for tests that run the real scripts in fresh processes."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Loads a SavedModel with TensorFlow alone (no project code on the path) and prints its
# serving outputs for the pairs in an .npy file as JSON.
LOAD_SAVED_MODEL = r"""
import json, sys
import numpy as np, tensorflow as tf
sig = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = sig(pair=tf.constant(np.load(sys.argv[2])))
print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}))
"""


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_CONFIG")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def run_python(args, cwd=None, timeout=300, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd or "/", env=clean_env(**env), capture_output=True, text=True, timeout=timeout
    )


def run_script(name, *args, timeout=300, **env) -> subprocess.CompletedProcess:
    return run_python([str(ROOT / "scripts" / name), *args], cwd=ROOT, timeout=timeout, **env)


# A real served model, small: the serving tests' SavedModels.
POLL = 0.5  # the servers' --poll-seconds in the tests


def tiny_model(seed):
    import keras

    from keras_models.models.builder import build_model
    from keras_models.training.config import Config

    keras.utils.set_random_seed(seed)
    return build_model(
        Config(model="cnn_aux", filters=(4, 8), hidden=(16,), comparer_type="expected").spec, 33.0, 80.0**2
    )


def in_process(path, pairs):
    """The SavedModel's answers for `pairs`, loaded in this process."""
    import tensorflow as tf

    from keras_models.serving.export import load_saved_model

    _, signature = load_saved_model(path)
    return {k: v.numpy() for k, v in signature(pair=tf.constant(pairs)).items()}


def same(answer: dict, expected: dict, atol=1e-6) -> bool:
    import numpy as np

    got = {k: np.array([p[k] for p in answer["predictions"]]) for k in expected}
    return all(np.allclose(got[k], expected[k], atol=atol) for k in expected)


def wait_for(check, seconds: float = 30.0, what: str = "condition"):
    """`check()`'s first true value within `seconds`, polled every 0.1 s; else the test fails."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {seconds} s")
