"""The ablation: a tiny row end to end, its ensembles, and the rule that names --recipe best."""

import json

import pytest
from helpers import ROOT

from keras_models.cli import train as train_script


@pytest.mark.slow
def test_ablation_row_and_an_ensemble_of_it_with_itself(tmp_path, embedded):
    """One tiny ablation row end to end; an ensemble of a model with itself must score exactly
    what the model scored alone, on the same redrawn pairs."""
    from experiments.ablation import evaluate_ensemble, run_ablation
    from keras_models.training.config import Config

    base = Config(rounds=1, pairs=200, quiet=True)
    out = tmp_path / "results"
    found = run_ablation(base, out, rows=["augment"], epochs_scale=0.04, log=lambda *_: None)
    (row,) = found["rows"]
    assert row["key"] == "augment"
    assert row["rounds"] == 1
    assert found["ensemble"] is None
    md = (out / "ablation.md").read_text()
    assert "| augment |" in md
    assert "**augment**" in md
    both = evaluate_ensemble(base, out, embedded, members=("augment", "augment"))
    assert both["rounds"] == 1
    assert both["test_accuracy_mean"] == pytest.approx(row["test_accuracy_mean"])
    assert both["validation_accuracy_mean"] == pytest.approx(row["validation_accuracy_mean"])
    assert both["digit_test_accuracy_mean"] == pytest.approx(row["digit_test_accuracy_mean"])


def test_second_ensemble_takes_the_best_rows_by_validation_among_pair_only_rows():
    from experiments.ablation import ENSEMBLE, STACKED_ENSEMBLE, ensembles

    def row(key, val, outside=False, changes=None):
        return {"key": key, "validation_accuracy_mean": val, "outside_images": outside, "changes": changes or {}}

    rows = [
        row("a", 0.95),
        row("b", 0.99),
        row("pre", 0.999, outside=True),
        row("c", 0.97),
        row("d", 0.98),
        row("e", 0.96),
        row("none", None),
        row("b_m1", 0.995, changes={"member": 1}),
    ]
    found = {name: members for name, (members, _) in ensembles(rows).items()}
    assert found == {
        "ensemble": ENSEMBLE,
        "ensemble_top4": ("b", "d", "c", "e"),
        "stacked_tta": ("stacked",),
        "stacked_x2": STACKED_ENSEMBLE[:2],
        "stacked_x3": STACKED_ENSEMBLE,
        "stacked_x3_tta": STACKED_ENSEMBLE,
    }
    assert "ensemble_top4" not in ensembles(rows[:3])  # too few rows for a top 4


def test_recipe_stacked_is_the_validation_winner_of_the_committed_ablation():
    """`--recipe stacked` must be what results/archive/ablation.json's rule picks (best mean validation
    accuracy among the rows that learn from the pairs alone), not a hand-copied guess."""
    from experiments.ablation import best_row
    from keras_models.training.recipes import STACKED

    rows = json.loads((ROOT / "results" / "archive" / "ablation.json").read_text())["rows"]
    winner = best_row(rows)
    assert json.loads(json.dumps(winner["changes"])) == json.loads(json.dumps(STACKED))
    with pytest.raises(ValueError, match="winner for cnn_aux"):
        train_script.build_config(train_script.parse_args(["--recipe", "stacked", "--model", "cc_aux"]))


def test_the_all_pairs_ablation_row_is_the_product_command():
    """results/archive/ablation.md's stacked_x3_tta_all row must train exactly what
    `train.py --model cnn_aux --recipe stacked --members 3 --tta` trains (bar where it writes)."""
    from experiments.ablation import ABLATION, ablation_config
    from keras_models.training.config import Config

    argv = ["--model", "cnn_aux", "--recipe", "stacked", "--members", "3", "--tta", "--rounds", "10"]
    product = train_script.build_config(train_script.parse_args(argv))
    (row,) = [r for r in ABLATION if r.key == "stacked_x3_tta_all"]
    cfg = ablation_config(Config(rounds=10), row, ROOT / "results")  # the base reproduce.py gives
    differ = {k for k, v in cfg.to_dict().items() if v != product.to_dict()[k]}
    assert differ == {"out", "export"}
    assert cfg.recipe.validation_split == 0.0
