"""The restructured code trains what the code before it trained: for the same seed, each round's
history.csv equals the one recorded from commit fa65fd9 (tests/data/histories_fa65fd9.json,
written by that commit's scripts/train.py with the flags below), per kernel library, since
oneDNN's and Eigen's kernels round differently, and per vector extension where a case rounds
differently on it (`speedrun` on AVX2: the file's "AVX2" entries). `--network project`: the
report recipe's networks as fa65fd9 built them."""

import csv
import json
from pathlib import Path

import pytest
from helpers import run_script

RECORDED = Path(__file__).with_name("data") / "histories_fa65fd9.json"
CASES = {
    "fast_cc_aux": ["--model", "cc_aux", "--recipe", "fast"],
    "sprint": ["--model", "cnn_aux", "--recipe", "sprint"],
    "speedrun": ["--model", "cnn_aux", "--recipe", "speedrun"],
    "report_mlp": ["--model", "mlp", "--recipe", "report", "--network", "project"],
    "report_cnn": ["--model", "cnn", "--recipe", "report", "--network", "project"],
}
# Two rounds, so that the second trains on the step the first traced (fitting.restart).
COMMON = ["--epochs", "2", "--pairs", "200", "--rounds", "2", "--seed", "7", "--no-export", "--quiet"]
# Float tolerance: the same kernels on the same inputs give the same bits, so the recorded runs
# repeat exactly; the margin admits a reordered sum, not a changed computation (a changed
# initialisation or batch order moves the losses by more than 1e-2 within two epochs).
TOLERANCE = 1e-4


def recorded_history(case: str) -> dict:
    """The history fa65fd9 trained for `case` under this process's kernel library and CPU."""
    from keras_models.core.machine import cpu, onednn_enabled

    recorded = json.loads(RECORDED.read_text())
    library = "onednn" if onednn_enabled() else "eigen"
    by_extension = recorded.get(cpu()["vector_extension"], {}).get(library, {})
    return by_extension.get(case, recorded[library][case])


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_the_same_seed_trains_the_same_history_as_before(case, tmp_path):
    recorded = recorded_history(case)
    result = run_script("train.py", *CASES[case], *COMMON, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    for r in (0, 1):
        with open(tmp_path / f"round-{r:02d}" / "history.csv") as f:
            rows = list(csv.DictReader(f))
        before = recorded[str(r)]
        assert [list(row) for row in rows] == [list(row) for row in before], f"round {r}: other columns"
        for epoch, (now, then) in enumerate(zip(rows, before, strict=True), 1):
            for column in then:
                assert float(now[column]) == pytest.approx(float(then[column]), abs=TOLERANCE), (
                    f"round {r}, epoch {epoch}, {column}"
                )
