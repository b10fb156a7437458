"""Callbacks of a round, and its history.csv: the test curve after every epoch, and backups
that let a killed round resume from its last saved epoch."""

from __future__ import annotations

import contextlib
import csv
import json
import signal
import threading
import time
from pathlib import Path

import keras

from keras_models.core.files import atomic_write_text


class EpochRecorder(keras.callbacks.Callback):
    """Evaluates the test pairs after every epoch (inference mode; nothing is chosen by it) and
    rewrites history.csv keyed by epoch, so that an epoch replayed after a resume replaces its
    row instead of repeating it. It must run before BackupAndRestore: a row is on disk before
    the backup that marks its epoch done. `test_data` None: the training columns alone (the
    test evaluation is a sixth to a third of an epoch, by model: docs/BENCHMARKS.md).

    `path` may be a list, for a model that trains several rounds at once (training.stacked):
    `split(logs)` then gives each round's logs under a lone round's names, in the paths' order."""

    def __init__(self, path: Path | list[Path], test_data=None, split=None):
        super().__init__()
        self.paths = list(path) if isinstance(path, (list, tuple)) else [path]
        self.test_data, self.split = test_data, split or (lambda logs: [logs])
        self.tables = [read_history(p) for p in self.paths]

    @property
    def rows(self) -> list[dict]:
        """The rows of the first (for a lone round, the only) history."""
        return self.tables[0]

    def on_epoch_end(self, epoch, logs=None):
        trained = self.split({k: float(v) for k, v in (logs or {}).items()})
        tested = [{}] * len(self.paths)
        if self.test_data is not None:
            tested = self.split(self.model.evaluate(self.test_data, verbose=0, return_dict=True))
        for i, path in enumerate(self.paths):
            row = {"epoch": epoch + 1, **trained[i], **{f"test_{k}": float(v) for k, v in tested[i].items()}}
            self.tables[i] = [r for r in self.tables[i] if int(r["epoch"]) < row["epoch"]] + [row]
            write_history(path, self.tables[i])
        if logs is not None and self.test_data is not None:  # the console line and TensorBoard show it too
            logs["test_compare_accuracy"] = self.rows[-1]["test_compare_accuracy"]


class Stopwatch(keras.callbacks.Callback):
    """The seconds a round has trained, over every invocation that worked on it: a resumed
    round starts from what its killed part recorded in `path`. Written as often as the backup
    (at most every `interval` seconds, and after the last epoch), since a kill replays the
    epochs after the last backup anyway, and the MLP family's epochs are short enough for a
    write each to show."""

    def __init__(self, path: Path, interval: float = 0.0):
        super().__init__()
        self.path, self.interval = path, interval
        self._last_write = time.monotonic()
        try:
            self.earlier = float(json.loads(path.read_text())["seconds"]) if path.is_file() else 0.0
        except (ValueError, KeyError, TypeError):
            self.earlier = 0.0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 == self.params.get("epochs")
        if not (self.interval <= 0 or last or time.monotonic() - self._last_write >= self.interval):
            return
        seconds = self.earlier + time.perf_counter() - self.start
        atomic_write_text(self.path, json.dumps({"seconds": round(seconds, 2), "epochs": epoch + 1}) + "\n")
        self._last_write = time.monotonic()


class EpochLog(keras.callbacks.Callback):
    """The console line of an epoch: its logs, then the seconds left in this fit and in the
    run, in whole seconds. The first epoch of a fit traces the step and takes several epochs'
    time, so an epoch's seconds are estimated from the epochs after it, and the first line
    has no estimate. Last in the list (after EpochRecorder adds the test accuracy)."""

    def __init__(self, fits_after: int, log=print):
        super().__init__()
        self.fits_after, self.log = fits_after, log

    def on_train_begin(self, logs=None):
        self.start = self.last = time.perf_counter()
        self.seen, self.first = 0, 0.0

    def on_epoch_end(self, epoch, logs=None):
        now, epochs = time.perf_counter(), self.params.get("epochs") or 1
        parts = [f"epoch {epoch + 1}/{epochs}", f"{now - self.last:.1f} s"]
        parts += [f"{k}: {float(v):.4f}" for k, v in (logs or {}).items()]
        self.seen += 1
        if self.seen == 1:
            self.first = now - self.start
        else:
            per_epoch = (now - self.start - self.first) / (self.seen - 1)
            left = per_epoch * (epochs - epoch - 1)
            per_fit = self.first + per_epoch * (epochs - 1)
            parts.append(f"eta: {round(left)} s (run: {round(left + self.fits_after * per_fit)} s)")
        self.last = now
        self.log(" - ".join(parts))


class IntervalBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore at epoch granularity, but at most every `interval` seconds (and after
    the last epoch): writing the weights and optimizer state costs ~0.1 s, about as much as a
    whole epoch of the MLP family. A kill then replays at most `interval` seconds of epochs,
    whose history rows EpochRecorder overwrites."""

    def __init__(self, backup_dir: str, interval: float):
        super().__init__(backup_dir, save_freq="epoch", double_checkpoint=True)
        self.interval = interval
        self._last_save = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 == self.params.get("epochs")
        if self.interval <= 0 or last or time.monotonic() - self._last_save >= self.interval:
            # Ctrl-C or SIGTERM halfway through the write would leave a backup that cannot be
            # restored: both wait until it is complete.
            with deferred_interrupts():
                super().on_epoch_end(epoch, logs)
            self._last_save = time.monotonic()
        else:
            self._current_epoch = epoch + 1

    def _save_model(self):
        """Keras' own backup (BackupAndRestore._save_model, Keras 3.15), with each file written
        whole beside its target and renamed into place. Keras lets HDF5 write the weights file
        in place; on a full disk HDF5 is left with a file it cannot close, and the process ends
        in a segmentation fault at exit. Here the weights are an HDF5 file in memory first."""
        import io

        from keras.src.saving import saving_lib

        from keras_models.core.files import atomic_write_bytes

        Path(self.backup_dir).mkdir(parents=True, exist_ok=True)
        for current, previous in (
            (self._weights_path, self._prev_weights_path),
            (self._training_metadata_path, self._prev_training_metadata_path),
        ):
            if self.double_checkpoint and Path(current).exists():
                atomic_write_bytes(previous, Path(current).read_bytes())
        buffer = io.BytesIO()
        store = saving_lib.H5IOStore(buffer, mode="w")
        saving_lib._save_state(
            self.model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set()
        )
        store.close()
        atomic_write_bytes(self._weights_path, buffer.getvalue())
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        atomic_write_text(self._training_metadata_path, json.dumps(metadata))


@contextlib.contextmanager
def deferred_interrupts(signals=(signal.SIGINT, signal.SIGTERM)):
    """SIGINT and SIGTERM received inside the block take effect when it ends. (Blocking them
    in this thread is not enough: TensorFlow's threads receive them too, and Python runs the
    handler in this thread all the same.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in received[:1]:
            if callable(previous[s]):
                previous[s](s, None)
            elif previous[s] == signal.SIG_DFL:
                signal.raise_signal(s)


def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) if k != "epoch" else int(v) for k, v in r.items()} for r in csv.DictReader(f)]


def write_history(path: Path, rows: list[dict]) -> None:
    columns = ["epoch"] + sorted({k for r in rows for k in r} - {"epoch"})
    lines = [",".join(columns)] + [",".join(str(r.get(c, "")) for c in columns) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")
