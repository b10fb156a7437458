"""tf.distribute strategies by name, and who is the chief that writes results."""

from __future__ import annotations

import json
import os
import warnings

from keras_models.core.errors import ConfigError

# Keras versions the multi-worker shim below was written and tested against.
SHIM_TESTED_KERAS = ("3.15.1",)


def get_strategy(name: str = "auto"):
    import tensorflow as tf

    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # With no GPU, mirror over the logical CPUs (one unless configured otherwise), so that
        # the strategy can be exercised on a CPU machine too.
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("--strategy multiworker needs TF_CONFIG (cluster and task) in the environment")
        task()  # a malformed TF_CONFIG is one clear line, not a failure deep inside TensorFlow
        patch_keras_multiworker()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy {name!r}")


def task() -> tuple[str, int]:
    """(type, index) of this process in TF_CONFIG; a lone process is the chief."""
    try:
        t = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    except json.JSONDecodeError:
        raise ConfigError("TF_CONFIG is not valid JSON") from None
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


def patch_keras_multiworker() -> None:
    """Make `model.fit` work under MultiWorkerMirroredStrategy with Keras 3.

    Upstream bug (keras-team/keras#20585, tensorflow/tensorflow#72388; present in Keras 3.15.1
    with TF 2.21): Keras' TF trainer (1) reduces a PerReplica *input batch* with
    `strategy.reduce` only to learn its shapes for the symbolic build, which a collective
    strategy cannot do eagerly, and (2) reduces scalar metric values with `axis=0`, which a
    scalar does not have. The shim (1) builds from the first local replica's batch (the same
    shapes), and (2) reduces metrics across replicas with `axis=None`, the same mean that the
    single-worker path takes. Nothing else changes. `tests/test_distribute.py` runs two workers
    without the shim and fails once upstream no longer needs it.
    """
    import keras
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    # KERAS_MODELS_NO_MW_SHIM=1 runs upstream Keras as it is: the test that watches for a fix.
    if getattr(tf_trainer, "_keras_models_shim", False) or os.environ.get("KERAS_MODELS_NO_MW_SHIM") == "1":
        return
    if keras.__version__ not in SHIM_TESTED_KERAS:
        warnings.warn(
            f"the multi-worker shim was tested with Keras {SHIM_TESTED_KERAS}, not {keras.__version__}", stacklevel=2
        )

    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tree.map_structure(
                    lambda x: (
                        self.distribute_strategy.experimental_local_results(x)[0]
                        if isinstance(x, tf.distribute.DistributedValues)
                        else x
                    ),
                    batch,
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer._keras_models_shim = True
