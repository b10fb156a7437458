"""The best public recipe on this protocol (`../shared/bench/peer_lenet.py`, a siamese LeNet in
PyTorch) run as a reference beside the project's own runs: its training seconds per round, on
the machine and in the invocation of the runs it is compared with, set the budgets of the
sprint and the speedrun (experiments/frontier.py). The peer needs torch; the project does not:
it runs in its own process, and a missing torch is one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from keras_models.core.errors import ConfigError

DEFAULT_PEER = Path(__file__).resolve().parents[2] / "shared" / "bench" / "peer_lenet.py"
# The default cnn_aux in PyTorch, beside it: the reference of benchmark.py --compare-torch.
DEFAULT_REFERENCE = DEFAULT_PEER.parent / "torch_reference.py"
# As a checkout's messages name it: beside the checkout.
DEFAULT_PEER_TEXT = f"../{DEFAULT_PEER.relative_to(DEFAULT_PEER.parents[2]).as_posix()}"


def last_error_line(done: subprocess.CompletedProcess) -> str:
    """The last line a failed child process wrote to stderr: its error, for one line of ours."""
    return (done.stderr.strip().splitlines() or ["no output"])[-1]


def run_peer(script: Path, test_data: str | None, rounds: int, seed: int, log=print) -> dict:
    """The peer's JSON line (per-round test accuracy in %, mean, std, training seconds per
    round), with the machine it ran on. Its test pairs come from the MNIST test set, as the
    project's do with --test-data."""
    from keras_models.core.machine import describe

    if not Path(script).is_file():
        raise ConfigError(f"peer script {script} not found")
    if not test_data:
        raise ConfigError("the peer draws its test pairs from the MNIST test set: give --test-data")
    log(f"peer: {script.name}, {rounds} rounds")
    argv = [sys.executable, str(script), "--test-dir", str(test_data), "--rounds", str(rounds), "--seed", str(seed)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"peer script {script.name} failed: {last_error_line(done)}")
    try:
        line = json.loads(done.stdout.strip().splitlines()[-1])
        float(line["train_s_per_round"])
    except (IndexError, ValueError, KeyError, TypeError):
        raise ConfigError(f"peer script {script.name} printed no result line") from None
    line["machine"] = describe()
    log(f"peer: {line['mean']:.2f} ± {line['std']:.2f}% in {line['train_s_per_round']:.2f} s of training per round")
    return line


def peer_seconds(folder: Path) -> float | None:
    """The peer's seconds per round recorded beside a run (`peer.json`), if it ran beside it."""
    path = folder / "peer.json"
    return float(json.loads(path.read_text())["train_s_per_round"]) if path.is_file() else None
