"""Rounds as Ray tasks (keras_models.training.ray_rounds): on the command's own Ray
(--workers) and on a real two-node Ray cluster on 127.0.0.1 (--ray-address), with a worker
process and a whole node killed mid-round."""

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import wait_for

from keras_models.core.errors import ConfigError
from keras_models.serving.local_server import free_port
from keras_models.training.callbacks import read_history
from keras_models.training.config import Config
from keras_models.training.ray_rounds import check_address, stop_ray, threads_per_worker

SMALL = dict(model="cc_aux", hidden=(32,), comparer=(8,), pairs=200, epochs=2, rounds=3, lr=1e-3, quiet=True)
TINY_STUDY = ["--recipe", "fast", "--models", "mlp", "--figures", "none", "--rounds", "3", "--epochs-scale", "0.04"]


def test_workers_share_the_cores_and_refuse_a_replicated_strategy():
    assert threads_per_worker(1) >= threads_per_worker(2) >= 1
    assert threads_per_worker(10_000) == 1
    for strategy in ("mirrored", "multiworker"):
        with pytest.raises(ConfigError, match="--workers and --ray-address"):
            Config(**SMALL, workers=2, strategy=strategy)
        with pytest.raises(ConfigError, match="--workers and --ray-address"):
            Config(**SMALL, ray_address="127.0.0.1:6379", strategy=strategy)


def test_an_address_that_is_not_host_and_port_or_does_not_answer_is_refused():
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        check_address("localhost")
    with pytest.raises(ConfigError, match="no Ray head answers there"):
        check_address(f"127.0.0.1:{free_port()}")


def test_a_cluster_that_does_not_answer_is_one_line_within_30_seconds(tmp_path):
    from helpers import run_script

    start = time.monotonic()
    port = free_port()
    done = run_script("reproduce.py", *TINY_STUDY, "--ray-address", f"127.0.0.1:{port}", "--out", str(tmp_path / "s"))
    assert time.monotonic() - start < 30
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("reproduce.py: error:")]
    assert f"127.0.0.1:{port}: no Ray head answers there" in line
    assert not (tmp_path / "s" / "runs").exists()


def assert_same_rounds(alone: dict, other: dict, alone_dir: Path, other_dir: Path) -> None:
    """The same rounds within float tolerance: other thread counts sum in another order."""
    assert [r["round"] for r in other["rounds"]] == [r["round"] for r in alone["rounds"]]
    assert other["rounds_ok"] == alone["rounds_ok"]
    for a, b in zip(alone["rounds"], other["rounds"], strict=True):
        for key in ("train_accuracy", "test_accuracy"):
            assert b[key] == pytest.approx(a[key], abs=0.006), key  # a pair or so of 200
        ha = read_history(alone_dir / f"round-{a['round']:02d}" / "history.csv")
        hb = read_history(other_dir / f"round-{b['round']:02d}" / "history.csv")
        np.testing.assert_allclose([r["loss"] for r in hb], [r["loss"] for r in ha], rtol=1e-3)


@pytest.mark.slow
def test_rounds_on_a_local_ray_give_what_one_process_gives(tmp_path, embedded):
    from keras_models.training.run import run

    alone = run(Config(**SMALL, out=str(tmp_path / "alone"), export=False), log=lambda *a: None, images=embedded)
    lines = []
    side = run(Config(**SMALL, workers=2, out=str(tmp_path / "side"), export=False), log=lines.append, images=embedded)
    assert "on a local Ray, 2 at a time" in lines[0]
    assert_same_rounds(alone, side, tmp_path / "alone", tmp_path / "side")
    for b in side["rounds"]:
        assert b["machine"]["intra_op_threads"] == threads_per_worker(2)
    stop_ray()  # the local Ray lives as long as the process that started it: this test's
    saved = json.loads((tmp_path / "side" / "results.json").read_text())
    assert saved["rounds_ok"] == 3
    assert (tmp_path / "side" / "model.keras").is_file()
    assert not (tmp_path / "side" / "backup").exists()


def processes() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, command line)} of every process, from /proc."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(proc.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    return found


def round_tasks(parent: int | None = None, ancestor: int | None = None) -> list[int]:
    """The Ray worker processes running a round (their title is ray::train_round): children of
    `parent`, or descendants of `ancestor` (a command whose own Ray runs them)."""
    table = processes()

    def descends(p: int) -> bool:
        while p in table and p != ancestor:
            p = table[p][0]
        return p == ancestor

    return [
        p
        for p, (pp, c) in table.items()
        if c.startswith("ray::train_round") and parent in (None, pp) and (ancestor is None or descends(p))
    ]


def start_train(out: Path, epochs: int, *extra: str, env=None):
    from helpers import ROOT, clean_env

    argv = [sys.executable, str(ROOT / "scripts" / "train.py"), "--model", "cc_aux", "--hidden", "32", "--comparer"]
    argv += ["8", "--pairs", "200", "--epochs", str(epochs), "--rounds", "4", "--no-export"]
    argv += ["--out", str(out), *extra]
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=clean_env(**(env or {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return proc, argv


@pytest.mark.slow
def test_a_killed_worker_process_has_its_round_run_again_and_the_run_completes(tmp_path):
    out = tmp_path / "run"
    proc, _ = start_train(out, 40, "--workers", "2")
    victim = wait_for(lambda: round_tasks(ancestor=proc.pid), 120, "round task")[0]
    os.kill(victim, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    results = json.loads((out / "results.json").read_text())
    assert [r["round"] for r in results["rounds"]] == [0, 1, 2, 3]  # each round once
    assert results["rounds_ok"] == 4


@pytest.mark.slow
def test_an_interrupted_run_ends_its_ray_instead_of_waiting_for_its_rounds(tmp_path):
    # Rounds of several minutes each: a command that waited for its rounds would time out below.
    proc, _ = start_train(tmp_path / "run", 5000, "--workers", "2")
    tasks = wait_for(lambda: len(round_tasks(ancestor=proc.pid)) == 2 and round_tasks(ancestor=proc.pid), 120, "two")
    os.kill(proc.pid, signal.SIGINT)  # the command alone, as `kill -INT` would
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted; to resume:" in stderr
    assert "Traceback" not in stderr
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in tasks), 30, "end of the round tasks")


class RayCluster:
    """A real two-node Ray cluster on 127.0.0.1: a head and a second node of one CPU each,
    started by Ray's own `ray start`, with a token of their own (Ray 2.59+ authenticates
    clusters by default). Stopped by killing its own processes: `ray stop` would end every Ray
    of the machine, and a driver whose Ray ends is ended with it."""

    def __init__(self, tmp_path: Path):
        token = tmp_path / "ray_token"
        token.write_text(secrets.token_hex(32))
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        self.port, self.node_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.ray = str(Path(sys.executable).parent / "ray")
        common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
        before = set(processes())
        try:
            self.start("--head", "--port", str(self.port), "--include-dashboard", "false", *common)
            self.start("--address", self.address, "--node-manager-port", str(self.node_port), *common)
        finally:  # the daemons `ray start` left running: each names the head's port (gcs_server, raylets, monitors)
            ours = (f":{self.port} ", f"port={self.port} ")
            self.daemons = {
                p for p, (_, c) in processes().items() if p not in before and any(o in c + " " for o in ours)
            }

    def start(self, *args: str) -> None:
        from helpers import clean_env

        done = subprocess.run(
            [self.ray, "start", *args], env=clean_env(**self.env), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]

    def second_raylet(self) -> int:
        (pid,) = [
            p
            for p, (_, c) in processes().items()
            if "/raylet/raylet " in c and f"--node_manager_port={self.node_port}" in c
        ]
        return pid

    def stop(self) -> None:
        """SIGKILL to the cluster's daemons and to every process under them (its workers)."""
        table = processes()
        doomed, grew = set(self.daemons) & set(table), True
        while grew:
            more = {p for p, (pp, _) in table.items() if pp in doomed} - doomed
            doomed |= more
            grew = bool(more)
        for p in doomed:
            with contextlib.suppress(ProcessLookupError):  # ended already
                os.kill(p, signal.SIGKILL)


@pytest.fixture
def ray_cluster(tmp_path):
    cluster = RayCluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.slow
def test_the_study_on_a_two_node_cluster_gives_what_a_local_run_gives(tmp_path, ray_cluster):
    from helpers import run_script

    local = run_script("reproduce.py", *TINY_STUDY, "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    remote = run_script(
        "reproduce.py",
        *TINY_STUDY,
        "--ray-address",
        ray_cluster.address,
        "--out",
        str(tmp_path / "cluster"),
        **ray_cluster.env,
    )
    assert remote.returncode == 0, remote.stderr
    assert f"on the Ray cluster at {ray_cluster.address}" in remote.stdout
    a, b = (tmp_path / "local" / "runs" / "mlp"), (tmp_path / "cluster" / "runs" / "mlp")
    assert_same_rounds(json.loads((a / "results.json").read_text()), json.loads((b / "results.json").read_text()), a, b)
    for r in range(3):  # the driver wrote each round's files from what its task returned
        assert {p.name for p in (b / f"round-{r:02d}").iterdir()} == {"history.csv", "model.keras", "timing.json"}
    table = json.loads((tmp_path / "cluster" / "table.json").read_text())
    assert table["rows"][0]["model"] == "mlp"


@pytest.mark.slow
def test_a_node_killed_mid_round_has_its_round_run_again_and_the_study_completes(tmp_path, ray_cluster):
    out = tmp_path / "run"
    proc, _ = start_train(out, 300, "--ray-address", ray_cluster.address, env=ray_cluster.env)
    raylet = ray_cluster.second_raylet()
    wait_for(lambda: round_tasks(parent=raylet), 120, "round task on the second node")
    os.kill(raylet, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    results = json.loads((out / "results.json").read_text())
    assert [r["round"] for r in results["rounds"]] == [0, 1, 2, 3]  # each round once, none lost
    assert results["rounds_ok"] == 4
    for r in range(4):
        assert read_history(out / f"round-{r:02d}" / "history.csv")[-1]["epoch"] == 300
    assert sorted(int(x.split("round ")[1].split(":")[0]) for x in stdout.splitlines() if ": train " in x) == [
        1,
        2,
        3,
        4,
    ]


@pytest.mark.slow
def test_a_resumed_run_never_trains_a_finished_round_again(tmp_path):
    from helpers import ROOT, clean_env

    out = tmp_path / "run"
    proc, argv = start_train(out, 150, "--workers", "2")
    results = out / "results.json"

    def finished():
        return results.is_file() and json.loads(results.read_text())["rounds"]

    wait_for(finished, 300, "finished round")
    os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    before = {r["round"]: r for r in json.loads(results.read_text())["rounds"]}
    assert 0 < len(before) < 4
    again = subprocess.run(argv, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    after = {r["round"]: r for r in json.loads(results.read_text())["rounds"]}
    assert sorted(after) == [0, 1, 2, 3]
    for r, entry in before.items():
        assert after[r] == entry  # kept as it was, not trained again
    trained = {int(x.split("round ")[1].split(":")[0]) - 1 for x in again.stdout.splitlines() if ": train " in x}
    assert trained == set(range(4)) - set(before)
