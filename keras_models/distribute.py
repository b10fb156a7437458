"""tf.distribute strategies by name, and who is the chief that writes results."""
from __future__ import annotations

import json
import os


def get_strategy(name: str = "auto"):
    import tensorflow as tf

    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs TF_CONFIG (cluster and task) in the environment")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}")


def task() -> tuple[str, int]:
    """(type, index) of this process in TF_CONFIG; a lone process is the chief."""
    try:
        t = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    except json.JSONDecodeError:
        raise ValueError("TF_CONFIG is not valid JSON") from None
    return t.get("type", "chief"), int(t.get("index", 0))


def is_chief() -> bool:
    """The chief writes results and exports; in a cluster without a 'chief' task that is worker 0."""
    kind, index = task()
    if kind == "chief":
        return True
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError:
        return False
    return kind == "worker" and index == 0 and "chief" not in cluster
