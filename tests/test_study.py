"""reproduce.py end to end at tiny size: two models, one round, two epochs."""
import json

import pytest

from helpers import ROOT
from keras_models.study import FIGURES, TABLE, plan

import importlib.util

spec = importlib.util.spec_from_file_location("reproduce_script", ROOT / "scripts" / "reproduce.py")
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)


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


@pytest.mark.slow
def test_ablation_row_and_an_ensemble_of_it_with_itself(tmp_path, embedded):
    """One tiny ablation row end to end; an ensemble of a model with itself must score exactly
    what the model scored alone, on the same redrawn pairs."""
    from keras_models.config import Config
    from keras_models.study import evaluate_ensemble, run_ablation

    base = Config(rounds=1, pairs=200, quiet=True)
    out = tmp_path / "results"
    found = run_ablation(base, out, rows=["augment"], epochs_scale=0.04, log=lambda *_: None)
    (row,) = found["rows"]
    assert row["key"] == "augment" and row["rounds"] == 1 and found["ensemble"] is None  # members missing
    md = (out / "ablation.md").read_text()
    assert "| augment |" in md and "**augment**" in md
    both = evaluate_ensemble(base, out, embedded, members=("augment", "augment"))
    assert both["rounds"] == 1
    assert both["test_accuracy_mean"] == pytest.approx(row["test_accuracy_mean"])
    assert both["validation_accuracy_mean"] == pytest.approx(row["validation_accuracy_mean"])
    assert both["digit_test_accuracy_mean"] == pytest.approx(row["digit_test_accuracy_mean"])



def test_second_ensemble_takes_the_best_rows_by_validation_among_pair_only_rows():
    from keras_models.study import ENSEMBLE, STACKED_ENSEMBLE, ensembles

    def row(key, val, outside=False, changes=None):
        return {"key": key, "validation_accuracy_mean": val, "outside_images": outside, "changes": changes or {}}

    rows = [row("a", 0.95), row("b", 0.99), row("pre", 0.999, outside=True), row("c", 0.97),
            row("d", 0.98), row("e", 0.96), row("none", None), row("b_m1", 0.995, changes={"member": 1})]
    found = {name: members for name, (members, _) in ensembles(rows).items()}
    assert found == {"ensemble": ENSEMBLE, "ensemble_top4": ("b", "d", "c", "e"), "stacked_tta": ("stacked",),
                     "stacked_x2": STACKED_ENSEMBLE[:2], "stacked_x3": STACKED_ENSEMBLE, "stacked_x3_tta": STACKED_ENSEMBLE}
    assert "ensemble_top4" not in ensembles(rows[:3])  # too few rows for a top 4
