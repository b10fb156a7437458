"""reproduce.py end to end at tiny size: two models, one round, two epochs."""
import json

import pytest

from experiments.cli import reproduce
from experiments.study import FIGURES, TABLE, plan


def test_plan_runs_each_experiment_once_and_narrows_figures():
    keys = [e.key for e in plan([e.model for e in TABLE], sorted(FIGURES))]
    assert len(keys) == len(set(keys)) == 12
    assert [e.key for e in plan(["mlp", "cc"], [4, 5])] == ["mlp", "cc", "mlp-h500", "cc-h500"]


@pytest.mark.slow
def test_reproduce_two_models_one_round_two_epochs(tmp_path):
    out = tmp_path / "results"
    # fast recipe: 50 epochs for the MLP family, x 0.04 = 2 epochs
    argv = ["--recipe", "fast", "--models", "mlp,cc_aux", "--figures", "5", "--rounds", "1",
            "--epochs-scale", "0.04", "--pairs", "200", "--out", str(out), "--quiet"]
    assert reproduce.main(argv) == 0
    table = json.loads((out / "table.json").read_text())
    assert [r["model"] for r in table["rows"]] == ["mlp", "cc_aux"]
    for row in table["rows"]:
        assert row["epochs"] == 2 and row["rounds"] == 1 and 0 <= row["test_accuracy_mean"] <= 1
    md = (out / "table.md").read_text()
    assert "| mlp |" in md and "| cc_aux |" in md and "81.04" in md
    assert (out / "figure5.png").stat().st_size > 10_000
    # A second invocation finds every round done and only rewrites the outputs.
    before = (out / "runs" / "mlp" / "results.json").read_text()
    assert reproduce.main(argv) == 0
    assert (out / "runs" / "mlp" / "results.json").read_text() == before


def test_bad_model_list_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        reproduce.main(["--models", "mlp,resnet"])
    assert exc.value.code == 2 and "expected a comma-separated list" in capsys.readouterr().err
