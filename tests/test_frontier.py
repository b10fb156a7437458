"""The small-model ablation: the rule that names --recipe speedrun and best, its table, the
recipes against the committed results, and a tiny run end to end."""

import json

import pytest
from helpers import ROOT

from experiments.frontier import FRONTIER, chosen, frontier_config, frontier_markdown, paired_dev_difference
from keras_models.cli import train as train_script
from keras_models.training.config import Config, load_config


def row(key, dev, seconds, rounds=10, mflop=18.9, test=0.98, peer=None, wall=None):
    return {
        "key": key,
        "peer_seconds": peer,
        "label": key,
        "changes": {},
        "rounds": rounds,
        "mflop": mflop,
        "params": 1,
        "dev_accuracy_mean": dev,
        "dev_accuracy_std": 0.01,
        "test_accuracy_mean": test,
        "test_accuracy_std": 0.01,
        "test_accuracy_min": test - 0.01,
        "seconds_per_round": seconds,
        "seconds_max": seconds + 1,
        "wall_seconds_per_round": wall,
        "onednn": "off",
    }


def test_rule_takes_the_best_dev_row_within_each_budget():
    rows = [
        row("sprint", 0.980, 1.9, peer=2.0),
        row("quick", 0.985, 6.9, peer=2.0),
        row("slow", 0.990, 300),
        row("best_but_big", 0.999, 1.0, mflop=80, peer=2.0),
        row("best_but_unfinished", 0.999, 1.0, rounds=3, peer=2.0),
        row("too_slow", 0.999, 1000),
        row("quick_but_not_beside_the_peer", 0.999, 1.0),
        row("sprint_but_slower_than_its_peer", 0.984, 2.1, peer=2.0),
        row("quicker_worse", 0.970, 1.0, peer=2.0),
    ]
    picks = chosen(rows, 10)
    assert picks == {"sprint": "sprint", "speedrun": "quick", "best": "quick_but_not_beside_the_peer"}
    assert chosen(rows[:3], 10) == {"sprint": "sprint", "speedrun": "quick", "best": "slow"}
    assert chosen(rows[3:6], 10) == {"sprint": None, "speedrun": None, "best": None}


def test_table_reports_test_accuracy_of_the_chosen_rows_only():
    rows = [
        row("quick", 0.980, 5.0, test=0.9712, peer=1.99, wall=8.5),
        row("slow", 0.990, 300, test=0.9934),
        row("other", 0.985, 200, test=0.9555),
    ]
    md = frontier_markdown(rows, chosen(rows, 10), Config(rounds=10))
    assert "| quick (**speedrun**) |" in md
    assert "| slow (**best**) |" in md
    assert "| 5.00 (6.00) | 8.50 | 1.99 |" in md
    assert "| 300 (301) | - | - |" in md  # a row from before rounds recorded their wall-clock
    assert "97.12 ± 1.00" in md
    assert "99.34 ± 1.00" in md
    assert "95.55" not in md
    assert md.count("not reported") == 1


@pytest.mark.parametrize("recipe", ["sprint", "speedrun", "best"])
def test_recipes_are_the_dev_winners_of_the_committed_frontier_and_train_what_their_rows_trained(recipe):
    """`--recipe speedrun` and `best` must be what results/archive/frontier.json's rule picks, and the
    product command must train exactly what the row trained (it only scores no dev pairs and
    writes elsewhere; best also draws the test curve, which changes no weight)."""
    from keras_models.training import recipes

    found = json.loads((ROOT / "results" / "archive" / "frontier.json").read_text())
    picks = chosen(found["rows"], found["rounds"])
    assert picks == found["chosen"]
    assert picks[recipe]
    (winner,) = [r for r in FRONTIER if r.key == picks[recipe]]
    argv = ["--model", "cnn_aux", "--recipe", recipe, "--rounds", "10", "--test-data", "../shared/mnist"]
    product = train_script.build_config(train_script.parse_args(argv))
    cfg = frontier_config(Config(rounds=10, test_data="../shared/mnist"), winner, ROOT / "results")
    differ = {k for k, v in cfg.to_dict().items() if v != product.to_dict()[k]}
    assert differ == {"out", "export", "dev_pairs"} | ({"test_curve"} if recipe == "best" else set())
    # The recipe is the row's changes, the settings of the product command aside.
    changes = recipes.recipe_changes(recipe, "cnn_aux")
    assert {k: v for k, v in changes.items() if k != "test_curve"} == winner.changes


def test_the_named_recipes_are_for_cnn_aux_only():
    for recipe in ("sprint", "speedrun", "best", "stacked"):
        with pytest.raises(ValueError, match="winner for cnn_aux"):
            train_script.build_config(train_script.parse_args(["--recipe", recipe, "--model", "cc_aux"]))


def test_reproduce_refuses_rows_of_the_other_ablation_and_mixed_modes(capsys):
    from experiments.cli import reproduce

    assert reproduce.main(["--frontier", "--rows", "stacked"]) == 2
    assert "--rows" in capsys.readouterr().err
    assert reproduce.main(["--frontier", "--ablation"]) == 2
    assert reproduce.main(["--rows", "oc30"]) == 2


def test_paired_dev_difference_compares_rounds_of_the_same_seed(tmp_path):
    def results(name, devs):
        path = tmp_path / f"{name}.json"
        path.write_text(
            json.dumps({"rounds": [{"seed": s, "status": "ok", "dev_accuracy": d} for s, d in devs.items()]})
        )
        return path

    off = results("off", {0: 0.98, 1: 0.97, 2: 0.99})
    same = paired_dev_difference(results("same", {0: 0.981, 1: 0.969, 2: 0.99, 5: 0.5}), off)
    assert same["rounds"] == 3
    assert same["mean"] == pytest.approx(0.0)
    assert same["keeps_accuracy"]
    worse = paired_dev_difference(results("worse", {0: 0.978, 1: 0.968, 2: 0.988}), off)
    assert worse["mean"] == pytest.approx(-0.2)
    assert not worse["keeps_accuracy"]
    with pytest.raises(ValueError, match="share no finished round"):
        paired_dev_difference(results("other", {7: 0.9}), off)


@pytest.mark.slow
def test_a_tiny_frontier_end_to_end(tmp_path):
    from experiments.cli import reproduce
    from keras_models.core.machine import onednn_enabled

    out = tmp_path / "results"
    argv = [
        "--frontier",
        "--rows",
        "oc30_shift1,oc40_swap_shift1",
        "--rounds",
        "1",
        "--pairs",
        "100",
        "--epochs-scale",
        "0.05",
        "--quiet",
        "--out",
        str(out),
    ]
    assert reproduce.main(argv) == 0
    found = json.loads((out / "frontier.json").read_text())
    assert [r["key"] for r in found["rows"]] == ["oc30_shift1", "oc40_swap_shift1"]
    for r in found["rows"]:
        assert r["rounds"] == 1
        assert 0 <= r["dev_accuracy_mean"] <= 1
        assert r["mflop"] == pytest.approx(18.9, abs=0.1)
        config = load_config(out / "runs" / f"frontier-{r['key']}" / "config.json")
        assert config.recipe.dev_pairs == 1000
        assert config.recipe.test_curve is False
        assert config.recipe.lr_schedule == "onecycle"
        rounds = json.loads((out / "runs" / f"frontier-{r['key']}" / "results.json").read_text())["rounds"]
        assert rounds[0]["machine"]["onednn"] is onednn_enabled()
        assert (config.spec.shift, config.spec.rotation) == (1, 0)
    # Without the peer beside them, rows compete for `best` alone; both tiny rows train well
    # within its 900 s, so the one with the better mean dev accuracy is it.
    assert found["chosen"]["best"] == max(found["rows"], key=lambda r: r["dev_accuracy_mean"])["key"]
    assert found["chosen"]["sprint"] is None
    assert found["chosen"]["speedrun"] is None
    state = "on" if onednn_enabled() else "off"  # what TensorFlow chose on this CPU, or as told
    assert all(r["onednn"] == state for r in found["rows"])
    md = (out / "frontier.md").read_text()
    assert (out / "frontier.png").stat().st_size > 0
    assert "| oc30_shift1" in md
    assert f"| {state} |" in md


def test_the_peer_is_refused_in_one_line_without_its_script_or_test_pairs(tmp_path, capsys):
    from experiments.cli import reproduce

    base = ["--frontier", "--rows", "none", "--rounds", "1", "--out"]
    assert reproduce.main([*base, str(tmp_path / "a"), "--peer", str(tmp_path / "missing.py")]) == 2
    assert "missing.py not found" in capsys.readouterr().err
    assert reproduce.main([*base, str(tmp_path / "b"), "--peer"]) == 2
    assert "give --test-data" in capsys.readouterr().err
    assert reproduce.main(["--peer"]) == 2
    assert "--peer needs --frontier" in capsys.readouterr().err


@pytest.mark.slow
def test_rows_run_beside_the_real_peer_keep_its_seconds_and_compete_for_the_sprint(
    tmp_path, peer_script, peer_test_folder
):
    from experiments.cli import reproduce

    out = tmp_path / "results"
    argv = ["--frontier", "--rows", "sprint_c16_e12", "--rounds", "1", "--epochs-scale", "0.1", "--quiet"]
    argv += ["--test-data", str(peer_test_folder), "--peer", str(peer_script), "--out", str(out)]
    assert reproduce.main(argv) == 0
    peers = json.loads((out / "runs" / "frontier-sprint_c16_e12" / "peer.json").read_text())["rows"]
    # The peer trained on the rows' own pairs: its recipe's 800 of them, then all 1000.
    assert [(p["pairs"], p["train_pairs"]) for p in peers] == [("given", 800), ("given", 1000)]
    peer = peers[0]
    assert 50 < peer["mean"] <= 100
    assert peer["train_s_per_round"] > 0
    assert peer["machine"]["cpu"]
    (found,) = json.loads((out / "frontier.json").read_text())["rows"]
    assert found["peer_seconds"] == peer["train_s_per_round"]
    # The pick written is the rule's on the rows written (the rule's two outcomes, within the
    # peer's seconds and not, are test_rule_takes_the_best_dev_row_within_each_budget's).
    written = json.loads((out / "frontier.json").read_text())
    assert written["chosen"] == chosen(written["rows"], 1)
