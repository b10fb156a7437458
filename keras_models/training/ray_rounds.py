"""Rounds as Ray tasks: `--workers N` trains a run's rounds N at a time on a Ray that the
command starts for itself (nothing to set up), and `--ray-address HOST:PORT` sends them to a
Ray cluster that is already running (`ray start --head` on one machine, `ray start --address`
on the others, each with this package installed).

A task trains one round, the round's seed deciding everything it draws, exactly as one process
would, and returns its result, its parameter count and, on a cluster, the files of its round
folder: the driver writes them where the command was given, so the machines need no shared
disk. On the command's own Ray the task writes into the run folder itself, where its backups
let a stopped round resume from its last saved epoch. Only the driver writes results.json, as
each round ends; a round that is complete is never run again.

A task whose worker or machine dies (killed, out of memory, a node lost) is run again by Ray
(`max_retries`), from the start of its round; the driver keeps the first result of a round.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

from keras_models.core.errors import ConfigError, RunError
from keras_models.core.files import atomic_write_bytes
from keras_models.core.machine import visible_cpus
from keras_models.data.images import Images
from keras_models.models.cost import parameter_counts
from keras_models.training.config import Config

RETRIES = 3  # runs of a round after a lost worker or node, before the run gives up
ANSWER_SECONDS = 10.0  # how long an address may take to accept a connection
_WORKER: dict = {}  # a Ray worker process's own state: its threads and the runner it reuses
_DRIVER: dict = {}  # the command's: the address of the Ray it is connected to


def threads_per_worker(workers: int) -> int:
    return max(1, visible_cpus() // workers)


def check_address(address: str) -> tuple[str, int]:
    """HOST:PORT of a Ray cluster's head, answering within ANSWER_SECONDS; otherwise a
    ConfigError. Ray's own client waits minutes on an address where nothing listens."""
    host, sep, port = address.rpartition(":")
    if not (sep and host and port.isdigit()):
        raise ConfigError(f"--ray-address {address!r}: expected HOST:PORT of a Ray head (ray start --head)")
    try:
        socket.create_connection((host, int(port)), timeout=ANSWER_SECONDS).close()
    except OSError as e:
        raise ConfigError(
            f"--ray-address {address}: no Ray head answers there ({e.strerror or e}); start one with "
            f"`ray start --head --port {port}`"
        ) from None
    return host, int(port)


def start_ray(ray_address: str | None, workers: int) -> int:
    """Connects to the cluster at `ray_address`, or starts a local Ray of this machine's
    CPUs, once per process: the runs of a study share it, and its workers, whose TensorFlow is
    loaded, go on to the next model's rounds (Ray ends it when the process exits). Returns the
    CPUs each round's task asks for (its TensorFlow threads)."""
    import ray

    # A worker's TensorFlow threads are set once, when it loads TensorFlow: other threads, another Ray.
    address = (ray_address or "local", workers)
    if ray.is_initialized() and _DRIVER.get("address") != address:
        stop_ray()
    if not ray.is_initialized():
        quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
        if ray_address:  # answering: Run.start checked it before anything was written
            ray.init(address=ray_address, **quiet)
        else:
            # "local": a Ray of its own, even where `ray start` left a cluster running on the machine.
            # The dashboard is a web server that nobody of a command looks at; it also needs ray[default].
            ray.init(address="local", num_cpus=visible_cpus(), include_dashboard=False, **quiet)
        _DRIVER["address"] = address
    if ray_address:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return max(1, cpus // workers) if workers > 1 else 1
    return threads_per_worker(workers)


def _prepare(groups: dict, arch, threads: int) -> Config:
    """The worker process's TensorFlow, set once: Ray reuses a worker for later tasks."""
    import tensorflow as tf

    if not _WORKER:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        tf.get_logger().setLevel("ERROR")
        _WORKER["threads"] = threads
    from keras_models.models import architectures
    from keras_models.training.fitting import set_determinism

    if arch.name not in architectures.NAMES:  # registered in the driver by the caller's code
        architectures.register(arch)
    cfg = Config.from_groups(groups)
    set_determinism(cfg.recipe.jit_compile)  # as training.run sets it in one process, per run
    return cfg


def train_round(
    groups: dict, arch, images: tuple[Images, Images], index: int, threads: int, work: str | None, levers=()
):
    """One round in a Ray worker: (RoundResult.to_dict(), parameter counts, files). `work`: the
    run folder on a disk the driver shares, or None on a cluster, where the round trains in a
    folder of its own and returns its files as {path in the run folder: bytes}."""
    import tensorflow as tf

    from keras_models.training.rounds import RoundRunner

    start = time.perf_counter()
    cfg = _prepare(groups, arch, threads)
    folder = Path(work) if work else Path(tempfile.mkdtemp(prefix="round-"))
    try:
        key = (str(folder), repr(groups), repr([lever.describe() for lever in levers]))
        if _WORKER.get("key") != key:  # the runner keeps the traced step for the next round of a run
            runner = RoundRunner(cfg, tf.distribute.get_strategy(), folder, cfg.run.rounds, levers, images)
            _WORKER.update(key=key, runner=runner)
        ((model, result),) = _WORKER["runner"].rounds([index], images, log=lambda *_: None)
        result.wall_seconds = round(time.perf_counter() - start, 2)  # the task's, its set-up included
        round_dir = folder / f"round-{index:02d}"
        files = {}
        if not work:
            files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(round_dir.rglob("*")) if p.is_file()}
        return result.to_dict(), parameter_counts(model), files
    finally:
        if not work:
            _WORKER.pop("key", None)
            shutil.rmtree(folder, ignore_errors=True)


def train_on_ray(cfg: Config, work: Path, images: tuple[Images, Images], todo: list[int], log=print, levers=()):
    """Yields (RoundResult.to_dict(), parameter counts) as each round of `todo` ends, in any
    order, after its files are in `work`. Ray's task errors end the run with a RunError."""
    import ray

    threads, pending, finished = start_ray(cfg.run.ray_address, cfg.run.workers), {}, False
    try:
        # The workers print no epoch lines: those of several rounds at once would interleave.
        groups = cfg.replace(quiet=True).to_groups()
        task = ray.remote(train_round).options(num_cpus=threads, max_retries=RETRIES, name="train_round")
        shared = None if cfg.run.ray_address else str(work)
        where = f"the Ray cluster at {cfg.run.ray_address}" if cfg.run.ray_address else "a local Ray"
        log(
            f"{cfg.spec.model}: rounds {', '.join(str(r + 1) for r in todo)} of {cfg.run.rounds} on {where}, "
            f"{min(cfg.run.workers, len(todo)) if not cfg.run.ray_address else 'as many as fit'} at a time, "
            f"{threads} thread(s) each, {cfg.num_epochs} epochs each"
        )
        images_ref = ray.put(images)
        # A cluster's scheduler runs as many rounds as its CPUs hold; the command's own Ray, --workers.
        first = todo if cfg.run.ray_address else todo[: cfg.run.workers]
        pending.update({task.remote(groups, cfg.arch, images_ref, r, threads, shared, levers): r for r in first})
        waiting = todo[len(pending) :]
        while pending:
            # Timed waits, so that Ctrl-C reaches the main thread between them.
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                r = pending.pop(ref)
                if waiting:
                    nxt = waiting.pop(0)
                    pending[task.remote(groups, cfg.arch, images_ref, nxt, threads, shared, levers)] = nxt
                try:
                    result, params, files = ray.get(ref)
                except ray.exceptions.RayError as e:
                    raise RunError(
                        f"round {r + 1} failed on Ray ({type(e).__name__}: {str(e).splitlines()[0][:200]}); the rounds "
                        f"finished are in {work / 'results.json'}, and the same command resumes the others"
                    ) from None
                for name, data in files.items():
                    (work / name).parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_bytes(work / name, data)
                yield result, params
        finished = True
    finally:
        if not finished:  # Ctrl-C, SIGTERM or a failed round: the rounds still running are ended, not waited for
            for ref in pending:
                ray.cancel(ref, force=True)
            stop_ray()


def stop_ray() -> None:
    """Disconnects from a cluster, or ends the command's own Ray and its workers. A worker killed
    while it writes a backup leaves the backup before it, which BackupAndRestore keeps beside
    the new one (callbacks.IntervalBackupAndRestore, double_checkpoint)."""
    import ray

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
    try:
        if ray.is_initialized():
            ray.shutdown()
        _DRIVER.clear()
    finally:
        signal.signal(signal.SIGINT, previous)
