"""The race of recipes against the peer, and of this checkout against another: refusals in one
line, and a real race of one round (with the peer, where torch is installed)."""

import json

import pytest
from helpers import ROOT

from experiments.cli import benchmark


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--race", "sprint"], "give --test-data"),
        (["--race-study", "0.1"], "needs --baseline"),
        (["--race-study", "0.1", "--baseline", "/nonexistent", "--test-data", "x"], "not a checkout"),
        (["--race", "sprint", "--test-data", "x", "--peer", "/nonexistent/peer.py"], "peer.py not found"),
    ],
)
def test_bad_race_requests_are_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert benchmark.main([*argv, "--out", str(tmp_path / "race")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert message in err[0]
    assert not (tmp_path / "race" / "race.json").exists()


def test_an_unknown_recipe_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as stop:
        benchmark.main(["--race", "sprint,nope"])
    assert stop.value.code == 2
    assert "unknown recipe 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_race_of_one_round_beside_the_real_peer_and_another_checkout(tmp_path, peer_script, peer_test_folder):
    from experiments.race import race

    result = race(["sprint"], 1, str(peer_test_folder), tmp_path, peer_script, baseline=ROOT)
    names = [e["name"] for e in result["entries"]]
    assert names == ["peer", "peer, 1000 pairs", "sprint", "sprint (before)"]
    peer, peer_all, now, before = result["entries"]
    assert peer["seconds_over_peer"] == 1.0
    assert now["seconds_over_before"] > 0
    # Both of the peer's rows trained on the pairs the project drew, on 800 and on all 1000 of them.
    recorded = json.loads((tmp_path / "peer.json").read_text())["rows"]
    assert [(r["pairs"], r["train_pairs"]) for r in recorded] == [("given", 800), ("given", 1000)]
    for e in (peer, peer_all, now, before):
        assert 0 < e["train_s_per_round"] * e["rounds"] < e["wall_seconds"]
    assert "| peer, 1000 pairs | 1000 |" in (tmp_path / "race.md").read_text()
    for e in (now, before):
        assert e["rounds"] == 1
        assert 50 < e["mean"] <= 100
        assert e["train_s_per_round"] > 0
        assert e["machine"]["cpu"]
        assert e["params"] < 100_000
    # Where its figures came from, and on equal terms: no entry scores test pairs inside its fit.
    assert result["test_curve"] is False
    assert {"date", "command", "commits", "machines"} <= set(result["provenance"])
    assert result["provenance"]["commits"]
    assert json.loads((tmp_path / "race.json").read_text()) == result
    assert (tmp_path / "race.png").stat().st_size > 0


def test_a_baseline_runs_its_own_code_not_the_installed_package(tmp_path):
    import subprocess
    import sys

    from experiments.race import in_tree

    (tmp_path / "keras_models").mkdir()
    (tmp_path / "keras_models" / "__init__.py").write_text("")
    code = "import keras_models; print(keras_models.__file__)"
    done = subprocess.run([sys.executable, "-c", code], env=in_tree(tmp_path), cwd="/", capture_output=True, text=True)
    assert done.stdout.strip() == str(tmp_path / "keras_models" / "__init__.py")


def test_a_peer_that_fails_to_start_is_one_line(tmp_path, capsys, peer_test_folder):
    # What a machine without torch sees: the peer's import fails in its own process.
    script = tmp_path / "peer.py"
    script.write_text("import torch_is_not_installed_here\n")
    argv = ["--race", "sprint", "--test-data", str(peer_test_folder), "--peer", str(script), "--rounds", "1"]
    argv += ["--out", str(tmp_path / "r")]
    assert benchmark.main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "peer.py failed" in line
    assert "ModuleNotFoundError" in line
