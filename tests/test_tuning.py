"""keras-tuner: the HyperModels sample into the plain builders; real searches, resumed; a chief
and two workers as real processes on 127.0.0.1; a search whose every trial fails."""

import contextlib
import json
import subprocess
import sys

import keras
import keras_tuner as kt
import pytest
from helpers import ROOT, clean_env

from keras_models.core.errors import RunError
from keras_models.serving.local_server import free_port
from keras_models.training.config import Config
from tuning.hypermodels import hypermodel_for


def rounds_of(base, embedded):
    from keras_models.training.rounds import RoundData

    return [RoundData.draw(base.replace(pairs=50), embedded, 0)]


def test_hp_values_reach_the_plain_builder(embedded):
    hm = hypermodel_for(Config(model="cnn_aux"), rounds_of(Config(), embedded))
    hp = kt.HyperParameters()
    hp.Fixed("depth", 3)
    hp.Fixed("filters", 16)
    hp.Fixed("units", 64)
    hp.Fixed("comparer_units", 32)
    cfg = hm.sample(hp)
    assert cfg.spec.filters == (16, 32, 32)
    assert cfg.spec.hidden == (64,)
    assert cfg.spec.comparer == (32, 32, 8)
    model = hm.build(hp)
    assert [
        layer.filters for layer in model.get_layer("classifier").layers if isinstance(layer, keras.layers.Conv2D)
    ] == [
        16,
        16,
        32,
        32,
        32,
        32,
    ]
    assert model.get_compile_config()["loss_weights"] == {"compare": 0.6, "digit1": 0.2, "digit2": 0.2}


def test_default_hyperparameters_are_the_default_architecture(embedded):
    # Each body's hypermodel searches its own widths: filters and dense units, or dense units.
    searched = {"cnn_aux": {"depth", "filters", "units"}, "cc": {"depth", "units"}}
    for name, body in searched.items():
        hm = hypermodel_for(Config(model=name), rounds_of(Config(), embedded))
        hp = kt.HyperParameters()
        cfg, default = hm.sample(hp), Config(model=name)
        assert set(hp.values) == body | {"comparer_units", "dropout", "lr"}
        assert (cfg.spec.filters, cfg.spec.comparer, cfg.spec.dropout) == (
            default.spec.filters,
            default.spec.comparer,
            default.spec.dropout,
        )
        if name == "cnn_aux":
            assert cfg.spec.hidden_units == default.spec.hidden_units


def test_four_conv_blocks_build(embedded):
    hp = kt.HyperParameters()
    hp.Fixed("depth", 4)
    model = hypermodel_for(Config(model="cnn"), rounds_of(Config(), embedded)).build(hp)
    assert model.get_layer("flatten").output.shape[-1] == 64  # 14 -> 7 -> 3 -> 1, the 4th block keeps 1x1


def tiny_base(**kw):
    return Config(**{"model": "cc_aux", "pairs": 200, "validation_split": 0.2, "lr": 1e-3, "quiet": True, **kw})


@pytest.mark.slow
def test_trials_are_numbered_as_keras_tuner_shows_them(tmp_path, capsys):
    """One numbering: keras-tuner's console, trials.md, trials.json and the best-trial line."""
    import re

    from tuning.search import Search, search

    lines = []
    best = search(tiny_base(quiet=False, epochs=1), Search("random", 2, 1, str(tmp_path), "p"), log=lines.append)
    shown = [int(n) for n in re.findall(r"^Trial (\d+) Complete", capsys.readouterr().out, re.M)]
    trials = json.loads((tmp_path / "p" / "trials.json").read_text())
    assert shown == [1, 2]
    assert sorted(t["trial"] for t in trials) == shown
    table = re.findall(r"^\| (\d+) \| COMPLETED", (tmp_path / "p" / "trials.md").read_text(), re.M)
    assert table == [str(t["trial"]) for t in trials]
    assert f"best: Trial {best['trial']}, " in "\n".join(lines)
    assert best["trial"] in shown


@pytest.mark.slow
def test_random_search_reports_and_resumes(tmp_path):
    from tuning.search import Search, search

    best = search(tiny_base(), Search("random", 2, 1, str(tmp_path), "p"), log=lambda *_: None)
    folder = tmp_path / "p"
    saved = json.loads((folder / "best_hparams.json").read_text())
    assert saved == json.loads(json.dumps(best))
    assert saved["config"]["spec"]["model"] == "cc_aux"
    assert 0 <= saved["val_compare_accuracy"] <= 1
    trials = json.loads((folder / "trials.json").read_text())
    assert len(trials) == 2
    assert all(t["status"] == "COMPLETED" and t["seconds"] > 0 for t in trials)
    assert saved["val_compare_accuracy"] == max(t["score"] for t in trials)
    assert (folder / "trials.png").stat().st_size > 0
    assert "| trial | status |" in (folder / "trials.md").read_text()
    # The same search again: the finished trials are kept, none is rerun.
    search(tiny_base(), Search("random", 2, 1, str(tmp_path), "p"), log=lambda *_: None)
    again = json.loads((folder / "trials.json").read_text())
    assert [(t["trial"], t["seconds"]) for t in again] == [(t["trial"], t["seconds"]) for t in trials]
    # Its trials are not reused by a search of other settings.
    with pytest.raises(RunError, match=r"other settings \(epochs\)"):
        search(tiny_base(), Search("random", 2, 3, str(tmp_path), "p"), log=lambda *_: None)
    with pytest.raises(RunError, match=r"other settings \(pairs\); use another --directory"):
        search(tiny_base(pairs=120), Search("random", 2, 1, str(tmp_path), "p"), log=lambda *_: None)
    assert json.loads((folder / "trials.json").read_text()) == again


@pytest.mark.slow
def test_dev_search_trains_each_trial_on_several_rounds_under_a_cost_limit(tmp_path):
    from tuning.search import Search, search

    base = tiny_base(pairs=100, dev_pairs=100, validation_split=0.0)
    best = search(base, Search("random", 1, 1, str(tmp_path), "dev", executions=2, max_mflop=50.0), log=lambda *_: None)
    folder = tmp_path / "dev"
    trials = json.loads((folder / "trials.json").read_text())
    assert all(t["status"] == "COMPLETED" and 0 <= t["score"] <= 1 and t["mflop"] <= 50 for t in trials)
    assert best["dev_compare_accuracy"] == max(t["score"] for t in trials)
    assert "val_compare_accuracy" not in best
    assert "100 dev pairs per round, the mean over 2 round(s) (seeds 0-1)" in (folder / "trials.md").read_text()
    assert json.loads((folder / "search.json").read_text())["executions"] == 2
    with pytest.raises(RunError, match=r"other settings \(executions\)"):
        search(base, Search("random", 1, 1, str(tmp_path), "dev", executions=3, max_mflop=50.0), log=lambda *_: None)
    # Every trial over the limit fails untrained, and the search says that none completed.
    with pytest.raises(RunError, match="no trial completed"):
        search(base, Search("random", 3, 1, str(tmp_path), "cheap", max_mflop=1e-3), log=lambda *_: None)
    assert [t["status"] for t in json.loads((tmp_path / "cheap" / "trials.json").read_text())] == ["FAILED"] * 3


def test_tune_cli_refuses_executions_without_dev_pairs_and_dev_pairs_with_hyperband(tmp_path, capsys):
    from tuning import cli

    for argv, message in (
        (["--executions", "2"], "it needs --dev-pairs"),
        (["--dev-pairs", "100", "--tuner", "hyperband"], "use random or bayesian"),
        (["--max-mflop", "0"], "expected a positive number"),
    ):
        with pytest.raises(SystemExit) if argv[0] == "--max-mflop" else contextlib.nullcontext():
            assert cli.main([*argv, "--directory", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert message in err.strip().splitlines()[-1]
        assert "Traceback" not in err
    # Too few images outside the pairs for the dev pairs: refused before the folder is made.
    assert cli.main(["--dev-pairs", "600", "--pairs", "1000", "--directory", str(tmp_path)]) == 2
    assert "outside the pairs" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_search_whose_trials_all_fail_fails_loudly(tmp_path, monkeypatch):
    import tuning.hypermodels
    from tuning.search import Search, search

    real_build, calls = tuning.hypermodels.build_model, []

    def broken_in_trials(*args, **kwargs):
        # keras-tuner builds one model when the tuner is made; every trial after it fails, as a
        # trial of a broken install does.
        calls.append(1)
        if len(calls) == 1:
            return real_build(*args, **kwargs)
        raise ImportError("No module named 'sklearn'")

    monkeypatch.setattr(tuning.hypermodels, "build_model", broken_in_trials)
    with pytest.raises(RunError, match=r"3 trials failed in a row; the last: ImportError: No module named 'sklearn'"):
        search(tiny_base(), Search("random", 3, 1, str(tmp_path), "p"), log=lambda *_: None)
    assert not (tmp_path / "p" / "best_hparams.json").exists()


@pytest.mark.slow
def test_chief_and_two_workers_share_one_search(tmp_path):
    port = free_port()
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "tune.py"),
        "--model",
        "cc_aux",
        "--pairs",
        "200",
        "--hidden",
        "32",
        "--max-trials",
        "6",
        "--epochs",
        "2",
        "--directory",
        str(tmp_path),
        "--quiet",
    ]
    procs = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = clean_env(
            KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(port)
        )
        procs[tuner_id] = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    outs = {}
    try:
        for name in ("tuner0", "tuner1", "chief"):
            outs[name] = procs[name].communicate(timeout=420)
    finally:
        for p in procs.values():
            p.kill()
    for name, p in procs.items():
        assert p.returncode == 0, f"{name}: {outs[name][1][-3000:]}"
    folder = tmp_path / "cc_aux-random"
    # Only the chief wrote the report, from its own oracle, after every worker was done.
    assert "best: Trial" in outs["chief"][0]
    assert "best: Trial" not in outs["tuner0"][0]
    trials = json.loads((folder / "trials.json").read_text())
    assert sorted(t["trial"] for t in trials) == sorted({t["trial"] for t in trials})  # each exactly once
    assert len(trials) == 6
    assert all(t["status"] == "COMPLETED" for t in trials)
    assert {t["tuner_id"] for t in trials} == {"tuner0", "tuner1"}


def test_tune_offers_no_train_only_flags():
    """Asked of the parsers themselves: neither a train-only setting's flag nor its --no- form
    is among tune.py's options, while train.py offers each."""
    import argparse

    from keras_models.cli import add_config_args
    from tuning.cli import TRAIN_ONLY, parse_args

    def options(skip=()):
        p = argparse.ArgumentParser()
        add_config_args(p, skip=skip)
        return set(p._option_string_actions)

    offered, every = options(TRAIN_ONLY), options()
    for name in TRAIN_ONLY:
        flag = "--" + name.replace("_", "-")
        assert flag in every
        assert flag not in offered
        assert f"--no-{flag[2:]}" not in offered
    assert "--epochs" in offered
    assert parse_args(["--epochs", "3"]).epochs == 3
