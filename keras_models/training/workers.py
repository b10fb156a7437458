"""Rounds side by side: `--workers N` trains a run's rounds in N processes at once, each with
its share of the CPU's cores as TensorFlow's threads. A small model's step is many small ops,
which one thread runs about as fast as two, so two processes on two cores train about twice the
rounds of the MLP family in the same time; a round takes longer, the run less.

Each worker keeps one RoundRunner, so that its rounds after the first reuse its traced step
(keras_models.training.fitting.reusable). Each round writes its own folder, model and backup, as in one
process; only this parent process writes results.json, as each round ends, so that a stopped
run resumes from the rounds it reports.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from keras_models.core.files import atomic_save_model
from keras_models.core.machine import visible_cpus
from keras_models.data.images import Images
from keras_models.training.config import Config

_WORKER: dict = {}  # the worker process's own state, set by _start


def threads_per_worker(workers: int) -> int:
    return max(1, visible_cpus() // workers)


def _start(groups: dict, arch, images: tuple[Images, Images], work: str, threads: int) -> None:
    # The parent answers Ctrl-C for the run; a worker's own KeyboardInterrupt would only add
    # tracebacks while the pool is taken down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.get_logger().setLevel("ERROR")
    tf.config.experimental.enable_op_determinism()  # as training.run sets it in one process
    from keras_models.models import architectures
    from keras_models.training.rounds import RoundRunner

    if arch.name not in architectures.NAMES:  # registered in the parent by the caller's code
        architectures.register(arch)
    cfg = Config.from_dict(groups)
    _WORKER.update(cfg=cfg, images=images, work=Path(work))
    _WORKER["runner"] = RoundRunner(cfg, tf.distribute.get_strategy(), Path(work), cfg.run.rounds)


def _round(index: int) -> tuple[dict, int]:
    from keras_models.training.rounds import RoundData

    cfg, work, runner = _WORKER["cfg"], _WORKER["work"], _WORKER["runner"]
    start = time.perf_counter()
    data = RoundData.draw(cfg, _WORKER["images"], index)
    round_dir = work / f"round-{index:02d}"
    round_dir.mkdir(exist_ok=True)
    model, result = runner.run(data)
    atomic_save_model(model, round_dir / "model.keras")
    result.wall_seconds = round(time.perf_counter() - start, 2)
    return result.to_dict(), int(model.count_params())


def train_in_workers(cfg: Config, work: Path, images: tuple[Images, Images], todo: list[int]):
    """Yields (RoundResult.to_dict(), parameter count) as each round of `todo` ends, in any order.
    A worker that dies (killed, out of memory) ends the run with BrokenProcessPool, where a
    multiprocessing.Pool would wait for it forever."""
    workers = min(cfg.run.workers, len(todo))
    # The workers print no epoch lines: those of several rounds at once would interleave.
    groups = cfg.replace(quiet=True).to_dict()
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),  # TensorFlow does not survive a fork
        initializer=_start,
        initargs=(groups, cfg.arch, images, str(work), threads_per_worker(workers)),
    )
    pending = {pool.submit(_round, r) for r in todo}
    try:
        while pending:
            # Timed waits: Python runs signal handlers in the main thread, and a SIGINT that the
            # kernel hands to another thread (TensorFlow's, the executor's) interrupts no wait of
            # the main thread, which reads the signal's flag only when it next wakes; an untimed
            # wait would sleep on until a round ended.
            done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    except BaseException:
        # Ctrl-C, SIGTERM, a dead worker or an error in the parent: without this, the rounds
        # still running would train to their end before the executor's shutdown returned.
        stop(pool)
        raise
    pool.shutdown()


def stop(pool: ProcessPoolExecutor) -> None:
    """Cancels the rounds not started and terminates the workers. A worker writing a backup
    finishes the write first (callbacks.deferred_interrupts), so no file is left half-written.
    ProcessPoolExecutor has no public way to end its workers before Python 3.14
    (terminate_workers), hence its private `_processes`."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.terminate()
    for p in processes:
        p.join(timeout=10)
        if p.is_alive():  # still alive 10 s after SIGTERM: stuck where no signal reaches it
            p.kill()
            p.join(timeout=10)
