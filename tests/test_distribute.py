"""tf.distribute: MirroredStrategy over two logical CPUs, and MultiWorkerMirroredStrategy with
two real worker processes on 127.0.0.1 (TF_CONFIG)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT, clean_env, run_python

from keras_models.serving.local_server import free_ports
from keras_models.training.distribute import is_chief

MIRRORED = r"""
import json, sys
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_models.training.config import Config
from keras_models.data.images import draw_round, load_data
from keras_models.training.distribute import get_strategy
from keras_models.models.builder import build_model, targets_for
from keras_models.training.compile import compile_for

# No dropout (its masks differ per replica); batch norm synchronised over the replicas: then two
# replicas of 50 compute the gradient of one batch of 100.
cfg = Config(model="cc_aux", hidden=(32,), comparer=(8,), dropout=0.0, lr=1e-3)
train, _ = draw_round(*load_data(), 200, 0)
weights, accs = {}, {}
for name in ("default", "mirrored"):
    strategy = get_strategy(name)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        replicated = name == "mirrored"
        model = compile_for(build_model(cfg.spec, 33.0, 6400.0, sync_bn=replicated), cfg, replicated=replicated)
    if name == "default":
        init = model.get_weights()
    else:
        model.set_weights(init)
    h = model.fit(train.x, targets_for(model, train), batch_size=100, epochs=3, shuffle=False, verbose=0)
    weights[name] = model.get_weights()
    accs[name] = h.history["compare_accuracy"]
    print(name, strategy.num_replicas_in_sync, file=sys.stderr)
diff = max(float(np.abs(a - b).max()) for a, b in zip(weights["default"], weights["mirrored"]))
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "max_weight_diff": diff, "acc": accs}))
"""


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_matches_one_device():
    proc = run_python(["-c", MIRRORED])
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["replicas"] == 2
    assert r["max_weight_diff"] < 1e-4
    np.testing.assert_allclose(r["acc"]["default"], r["acc"]["mirrored"], atol=1e-6)


def start_workers(tmp_path, n=2, **env):
    ports = free_ports(n)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(n):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        cmd = [
            sys.executable,
            str(ROOT / "scripts" / "train.py"),
            "--model",
            "cc_aux",
            "--hidden",
            "32",
            "--comparer",
            "8",
            "--epochs",
            "2",
            "--pairs",
            "200",
            "--strategy",
            "multiworker",
            "--out",
            str(tmp_path / "run"),
            "--export-dir",
            str(tmp_path / "saved_models"),
            "--quiet",
        ]
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=clean_env(TF_CONFIG=tf_config, **env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=300))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    return procs, outs


@pytest.mark.slow
def test_two_workers_train_to_the_same_weights_and_export_once(tmp_path):
    from keras_models.models.saving import load_keras_model

    procs, outs = start_workers(tmp_path)
    for p, (_out, err) in zip(procs, outs, strict=False):
        assert p.returncode == 0, err[-3000:]
    run = tmp_path / "run"
    results = json.loads((run / "results.json").read_text())
    assert [r["status"] for r in results["rounds"]] == ["ok"]
    # Worker 0 is the chief: it alone wrote results and the export; worker 1 kept to its folder.
    assert "exported SavedModel" in outs[0][0]
    assert "exported SavedModel" not in outs[1][0]
    assert sorted(p.name for p in (tmp_path / "saved_models" / "cc_aux").iterdir()) == ["1"]
    chief = load_keras_model(run / "round-00" / "model.keras").get_weights()
    worker = load_keras_model(run / ".workers" / "worker-1" / "round-00" / "model.keras").get_weights()
    for a, b in zip(chief, worker, strict=False):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="keras-team/keras#20585: Keras 3 fit fails under MultiWorkerMirroredStrategy")
def test_upstream_keras_trains_multiworker_without_the_shim(tmp_path):
    """An upstream canary: expected to fail while Keras needs patch_keras_multiworker. Once
    Keras is fixed it passes, strict xfail turns that into a failure, and the shim can go."""
    procs, outs = start_workers(tmp_path, KERAS_MODELS_NO_MW_SHIM="1")
    assert all(p.returncode == 0 for p in procs), [err.strip().splitlines()[-1:] for _, err in outs]


def test_chief_from_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief()
    cluster = {"worker": ["a:1", "b:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert not is_chief()
    cluster["chief"] = ["c:3"]
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert not is_chief()
