import json
from pathlib import Path

import numpy as np
import pytest

from keras_models.core.errors import ConfigError
from keras_models.training.callbacks import read_history
from keras_models.training.config import Config
from keras_models.training.workers import threads_per_worker

SMALL = dict(model="cc_aux", hidden=(32,), comparer=(8,), pairs=200, epochs=2, rounds=3, lr=1e-3, quiet=True)


def test_workers_share_the_cores_and_refuse_a_replicated_strategy():
    assert threads_per_worker(1) >= threads_per_worker(2) >= 1
    assert threads_per_worker(10_000) == 1
    for strategy in ("mirrored", "multiworker"):
        with pytest.raises(ConfigError, match="--workers"):
            Config(**SMALL, workers=2, strategy=strategy)


@pytest.mark.slow
def test_rounds_trained_by_two_workers_give_what_one_process_gives(tmp_path, embedded):
    from keras_models.training.run import run

    alone = run(Config(**SMALL, out=str(tmp_path / "alone"), export=False), log=lambda *a: None, images=embedded)
    lines = []
    side = run(Config(**SMALL, workers=2, out=str(tmp_path / "side"), export=False), log=lines.append, images=embedded)
    assert "in 2 processes of" in lines[0]
    assert [r["round"] for r in side["rounds"]] == [0, 1, 2]
    assert side["rounds_ok"] == 3
    for a, b in zip(alone["rounds"], side["rounds"], strict=False):
        assert b["machine"]["intra_op_threads"] == threads_per_worker(2)
        # Other thread counts may sum in another order: float tolerance, not equality.
        for key in ("train_accuracy", "test_accuracy", "digit_test_accuracy"):
            assert b[key] == pytest.approx(a[key], abs=0.006), key  # a pair or so of 200
        ha = read_history(tmp_path / "alone" / f"round-{a['round']:02d}" / "history.csv")
        hb = read_history(tmp_path / "side" / f"round-{b['round']:02d}" / "history.csv")
        np.testing.assert_allclose([r["loss"] for r in hb], [r["loss"] for r in ha], rtol=1e-3)
    saved = json.loads((tmp_path / "side" / "results.json").read_text())
    assert saved["rounds_ok"] == 3
    assert (tmp_path / "side" / "model.keras").is_file()
    assert not (tmp_path / "side" / "backup").exists()


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc."""
    from pathlib import Path

    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if int(fields.get("PPid", "0").strip()) == pid:
            found.append(int(status.parent.name))
    return found


def train_with_two_workers(out, epochs: int, training: int):
    """train.py with 2 workers in its own process, once `training` rounds have begun: the
    process, its argv and its worker processes."""
    import subprocess
    import sys
    import time

    from helpers import ROOT, clean_env

    argv = [sys.executable, str(ROOT / "scripts" / "train.py"), "--model", "cc_aux", "--hidden", "32", "--comparer"]
    argv += ["8", "--pairs", "200", "--epochs", str(epochs), "--rounds", "4", "--workers", "2", "--no-export"]
    argv += ["--quiet", "--out", str(out)]
    proc = subprocess.Popen(argv, cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("round-*/history.csv"))) < training:
        time.sleep(0.05)
    cmdlines = {p: Path(f"/proc/{p}/cmdline").read_bytes() for p in children(proc.pid)}
    workers = [p for p, c in cmdlines.items() if b"multiprocessing" in c and b"resource_tracker" not in c]
    assert workers, f"no worker process among {cmdlines}"
    return proc, argv, workers


@pytest.mark.slow
def test_a_killed_worker_ends_the_run_in_one_line_and_the_same_command_resumes(tmp_path):
    import os
    import signal
    import subprocess

    from helpers import ROOT, clean_env

    out = tmp_path / "run"
    proc, argv, workers = train_with_two_workers(out, epochs=40, training=1)
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr
    (line,) = [x for x in stderr.strip().splitlines() if "train.py" in x]
    assert "a worker process died" in line
    assert "the same command resumes" in line
    done = json.loads((out / "results.json").read_text())["rounds"] if (out / "results.json").is_file() else []
    assert len(done) < 4
    again = subprocess.run(argv, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    results = json.loads((out / "results.json").read_text())
    assert [r["round"] for r in results["rounds"]] == [0, 1, 2, 3]
    assert results["rounds_ok"] == 4


@pytest.mark.slow
def test_an_interrupted_run_ends_its_workers_instead_of_waiting_for_their_rounds(tmp_path):
    import os
    import signal

    # Rounds of several minutes each: a parent that waited for its workers would time out below.
    proc, _, workers = train_with_two_workers(tmp_path / "run", epochs=5000, training=2)
    os.kill(proc.pid, signal.SIGINT)  # the parent alone, as `kill -INT` would
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted; to resume:" in stderr
    assert "Traceback" not in stderr
    for p in workers:
        assert not os.path.exists(f"/proc/{p}") or "zombie" in Path(f"/proc/{p}/status").read_text()
