"""The best public recipe on this protocol (`../shared/bench/peer_lenet.py`, a siamese LeNet in
PyTorch) run as a reference beside the project's own runs, on the very pairs they train and
test on: `write_round_pairs` draws each round's pairs as train.py's rounds draw them, and the
peer reads them with `--pairs`. Its training seconds per round, on the machine and in the
invocation of the runs it is compared with, set the budgets of the sprint and the speedrun
(experiments/frontier.py). The peer needs torch; the project does not: it runs in its own
process, and a missing torch is one clear line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from keras_models.core.errors import ConfigError

DEFAULT_PEER = Path(__file__).resolve().parents[2] / "shared" / "bench" / "peer_lenet.py"
# The default cnn_aux in PyTorch, beside it: the reference of benchmark.py --compare-torch.
DEFAULT_REFERENCE = DEFAULT_PEER.parent / "torch_reference.py"
# As a checkout's messages name it: beside the checkout.
DEFAULT_PEER_TEXT = f"../{DEFAULT_PEER.relative_to(DEFAULT_PEER.parents[2]).as_posix()}"
# The peer's own recipe trains on 800 of the 1000 training pairs (its report's 80/20 split);
# beside it, the peer on all 1000, as the project's recipes train.
PEER_TRAIN_PAIRS = (800, 1000)


def last_error_line(done: subprocess.CompletedProcess) -> str:
    """The last line a failed child process wrote to stderr: its error, for one line of ours."""
    return (done.stderr.strip().splitlines() or ["no output"])[-1]


def write_round_pairs(path: Path, data: str, test_data: str | None, pairs: int, seed: int, rounds: int) -> Path:
    """Rounds 0 .. rounds-1 of train.py's pairs (as `RoundData.draw` draws them for a run with
    these settings, before any swap or validation split) in the peer's `--pairs` format:
    train_x (R, N, 2, 14, 14) pixels, train_classes (R, N, 2), test_x and test_classes alike."""
    from keras_models.core.files import atomic_write_bytes
    from keras_models.data.images import load_data
    from keras_models.training.config import Config
    from keras_models.training.rounds import RoundData

    cfg = Config(data=data, test_data=test_data, pairs=pairs, seed=seed)
    images = load_data(data, test_data)
    drawn = [RoundData.draw(cfg, images, r) for r in range(rounds)]
    arrays = {
        "train_x": np.stack([d.train.x for d in drawn]).astype(np.float32),
        "train_classes": np.stack([d.train.classes for d in drawn]).astype(np.int64),
        "test_x": np.stack([d.test.x for d in drawn]).astype(np.float32),
        "test_classes": np.stack([d.test.classes for d in drawn]).astype(np.int64),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def run_peer(script: Path, pairs_file: Path, rounds: int, seed: int, train_pairs: int, log=print) -> dict:
    """The peer's JSON line on the pairs of `pairs_file` (per-round test accuracy in %, mean,
    std, training seconds per round), with its process's wall-clock and the machine it ran on."""
    from keras_models.core.machine import describe

    if not Path(script).is_file():
        raise ConfigError(f"peer script {script} not found")
    log(f"peer: {script.name}, {rounds} rounds on the given pairs, {train_pairs} of them training")
    argv = [sys.executable, str(script), "--pairs", str(pairs_file), "--rounds", str(rounds), "--seed", str(seed)]
    argv += ["--train-pairs", str(train_pairs)]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise ConfigError(f"peer script {script.name} failed: {last_error_line(done)}")
    try:
        line = json.loads(done.stdout.strip().splitlines()[-1])
        float(line["train_s_per_round"])
    except (IndexError, ValueError, KeyError, TypeError):
        raise ConfigError(f"peer script {script.name} printed no result line") from None
    # An older peer does not say; these are what it was given.
    line.setdefault("pairs", "given")
    line.setdefault("train_pairs", train_pairs)
    line["wall_seconds"] = round(wall, 2)
    line["machine"] = describe()
    log(
        f"peer ({train_pairs} pairs): {line['mean']:.2f} ± {line['std']:.2f}% in "
        f"{line['train_s_per_round']:.2f} s of training per round, {wall:.1f} s of wall-clock"
    )
    return line


def run_peers(
    script: Path, folder: Path, data: str, test_data: str | None, pairs: int, seed: int, rounds: int, log=print
):
    """The peer on its own recipe's 800 training pairs and on all 1000, on the rounds' own pairs
    (written once to `folder`/pairs.npz): [(label, result)], its own recipe first."""
    if not Path(script).is_file():
        raise ConfigError(f"peer script {script} not found")
    if not test_data:
        raise ConfigError("the peer tests on pairs from the MNIST test set, as the rounds do: give --test-data")
    folder.mkdir(parents=True, exist_ok=True)
    given = write_round_pairs(folder / "pairs.npz", data, test_data, pairs, seed, rounds)
    return [(peer_name(n), run_peer(script, given, rounds, seed, n, log)) for n in PEER_TRAIN_PAIRS]


def peer_name(train_pairs: int) -> str:
    return "peer" if train_pairs == PEER_TRAIN_PAIRS[0] else f"peer, {train_pairs} pairs"


def peer_seconds(folder: Path) -> float | None:
    """The training seconds per round of the peer's own recipe recorded beside a run
    (`peer.json`), if it ran beside it."""
    path = folder / "peer.json"
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text())
    rows = recorded.get("rows", [recorded])  # one row: written before the peer ran twice
    return float(rows[0]["train_s_per_round"])
