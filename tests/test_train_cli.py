import json
import re

import numpy as np
import pytest
from helpers import LOAD_SAVED_MODEL, run_python, run_script

from keras_models.cli import train as train_script
from keras_models.models.saving import load_keras_model


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One short real run of train.py through main([...]): 2 rounds of 2 epochs on 200 pairs."""
    base = tmp_path_factory.mktemp("train")
    code = train_script.main(
        [
            "--model",
            "cc_aux",
            "--hidden",
            "64",
            "--comparer",
            "16",
            "--epochs",
            "2",
            "--rounds",
            "2",
            "--pairs",
            "200",
            "--lr",
            "1e-3",
            "--dev-pairs",
            "100",
            "--out",
            str(base / "run"),
            "--export-dir",
            str(base / "saved_models"),
            "--quiet",
        ]
    )
    assert code == 0
    return base


@pytest.mark.slow
def test_run_folder_has_results_history_and_model(tiny_run):
    run = tiny_run / "run"
    results = json.loads((run / "results.json").read_text())
    assert results["model"] == "cc_aux"
    assert results["params"] > 0
    assert results["config"]["spec"]["hidden"] == [64]
    assert results["config"]["recipe"]["epochs"] == 2
    assert results["data"] == {"train": "embedded:train", "test": "embedded:test"}
    assert [r["seed"] for r in results["rounds"]] == [0, 1]
    for r in results["rounds"]:
        assert r["status"] == "ok"
        assert 0 <= r["test_accuracy"] <= 1
        assert 0 <= r["train_accuracy"] <= 1
        assert 0 <= r["digit_test_accuracy"] <= 1
        assert 0 <= r["dev_accuracy"] <= 1
        # The wall-clock holds the training seconds and the rest of the round's wait.
        assert r["wall_seconds"] > r["seconds"] > 0
    # The export is the last round's last file, and its wait counts in that round.
    assert "export_seconds" not in results["rounds"][0]
    assert 0 < results["rounds"][-1]["export_seconds"] < results["rounds"][-1]["wall_seconds"]
    walls = [r["wall_seconds"] for r in results["rounds"]]
    assert results["wall_seconds_mean"] == pytest.approx(np.mean(walls))
    assert results["dev_accuracy_mean"] == pytest.approx(np.mean([r["dev_accuracy"] for r in results["rounds"]]))
    accs = [r["test_accuracy"] for r in results["rounds"]]
    assert results["test_accuracy_mean"] == pytest.approx(np.mean(accs))
    assert results["test_accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    for r in (0, 1):
        lines = (run / f"round-{r:02d}" / "history.csv").read_text().splitlines()
        header = lines[0].split(",")
        assert {"epoch", "loss", "compare_accuracy", "test_compare_accuracy", "test_loss"} <= set(header)
        assert [int(line.split(",")[0]) for line in lines[1:]] == [1, 2]
    assert json.loads((run / "config.json").read_text())["spec"]["model"] == "cc_aux"
    assert load_keras_model(run / "model.keras").name == "cc_aux"
    # The run's model.keras is the last round's file under a second name, not a copy of it.
    assert (run / "model.keras").samefile(run / "round-01" / "model.keras")


@pytest.mark.slow
def test_every_round_records_the_machine_it_ran_on(tiny_run):
    from keras_models.core.machine import VECTOR_FLAGS, onednn_enabled

    for r in json.loads((tiny_run / "run" / "results.json").read_text())["rounds"]:
        machine = r["machine"]
        assert machine["onednn"] is onednn_enabled()  # TensorFlow's own switch, not the variable
        assert machine["kernels"] == ("oneDNN" if machine["onednn"] else "Eigen")
        assert machine["cpu"]
        assert machine["vector_extension"] in {name for _, name in VECTOR_FLAGS} | {"unknown"}
        assert machine["cpus"] >= 1
        assert machine["intra_op_threads"] >= 0
        assert machine["inter_op_threads"] >= 0


@pytest.mark.slow
def test_export_loads_in_a_fresh_process_and_matches_keras(tiny_run, embedded):
    from keras_models.data.images import make_pairs

    export = tiny_run / "saved_models" / "cc_aux" / "1"
    assert (export / "saved_model.pb").is_file()
    train, _ = embedded
    x = make_pairs(train.images, train.labels, 16, np.random.default_rng(5)).x
    np.save(tiny_run / "x.npy", x)
    proc = run_python(["-c", LOAD_SAVED_MODEL, str(export), str(tiny_run / "x.npy")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    keras_out = load_keras_model(tiny_run / "run" / "model.keras").predict(x, verbose=0)
    assert set(served) == {"compare", "digit1", "digit2"}
    for key in served:
        np.testing.assert_allclose(np.array(served[key]), keras_out[key], atol=1e-5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "resnet"], "invalid choice: 'resnet'"),
        (["--epochs", "0"], "expected a positive integer, got '0'"),
        (["--rounds", "-1"], "expected a positive integer"),
        (["--hidden", "500,x"], "expected comma-separated integers"),
        (["--batch-size", "abc"], "expected a positive integer"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        train_script.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_bad_data_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bnot really gzip")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bnot really gzip")
    code = train_script.main(["--test-data", str(tmp_path), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("train.py: error: ")
    assert "t10k-images-idx3-ubyte.gz" in err
    assert "\n" not in err
    assert not (tmp_path / "run").exists()


def test_too_many_dev_pairs_is_one_line_and_writes_nothing(tmp_path, capsys):
    code = train_script.main(["--model", "mlp", "--pairs", "1000", "--dev-pairs", "400", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "outside the pairs: 400 pairs need 800 images" in err
    assert "\n" not in err
    assert not (tmp_path / "r").exists()


def test_too_many_pairs_for_the_source(tmp_path, capsys):
    code = train_script.main(["--pairs", "2000", "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2
    assert "2000 pairs need 4000 images, the source has 2500" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # failed before writing anything


@pytest.mark.slow
def test_train_script_runs_as_a_command(tmp_path):
    proc = run_script(
        "train.py",
        "--model",
        "mlp",
        "--hidden",
        "32",
        "--epochs",
        "1",
        "--pairs",
        "100",
        "--out",
        str(tmp_path / "run"),
        "--no-export",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "mlp: test accuracy" in proc.stdout
    # The command's last line is its own wall-clock, from the process's start: more than its round's.
    done = re.fullmatch(r"train\.py: done in ([0-9.]+) s of wall-clock", proc.stderr.strip().splitlines()[-1])
    assert done, proc.stderr[-500:]
    (r,) = json.loads((tmp_path / "run" / "results.json").read_text())["rounds"]
    assert float(done.group(1)) > r["wall_seconds"]
    assert not (tmp_path / "saved_models").exists()


def test_recipe_hparams_and_flags_layer_in_order(tmp_path):
    args = train_script.parse_args(["--recipe", "fast", "--model", "cnn"])
    cfg = train_script.build_config(args)
    assert (cfg.recipe.lr, cfg.num_epochs) == (1e-3, 25)
    assert (
        train_script.build_config(train_script.parse_args(["--recipe", "report", "--model", "mlp"])).num_epochs == 500
    )
    stacked = train_script.build_config(train_script.parse_args(["--recipe", "stacked", "--model", "cnn_aux"]))
    assert (stacked.recipe.lr, stacked.num_epochs, stacked.spec.comparer_type, stacked.spec.augment) == (
        1.72e-3,
        25,
        "expected",
        True,
    )
    assert (stacked.spec.filters, stacked.recipe.lr_schedule) == ((64, 128, 128), "cosine")
    best = train_script.build_config(train_script.parse_args(["--recipe", "best", "--model", "cnn_aux"]))
    assert (
        best.recipe.lr,
        best.num_epochs,
        best.recipe.lr_schedule,
        best.recipe.swap,
        best.spec.filters,
        best.spec.shift,
        best.spec.rotation,
    ) == (
        3e-3,
        40,
        "onecycle",
        True,
        (32, 64),
        1,
        0.0,
    )
    flag = train_script.build_config(
        train_script.parse_args(["--recipe", "best", "--model", "cnn_aux", "--lr", "1e-3"])
    )
    assert flag.recipe.lr == 1e-3
    speedrun = train_script.build_config(train_script.parse_args(["--recipe", "speedrun", "--model", "cnn_aux"]))
    assert (
        speedrun.num_epochs,
        speedrun.recipe.test_curve,
        speedrun.spec.shift,
        speedrun.recipe.optimizer,
        speedrun.recipe.lr,
    ) == (
        20,
        False,
        1,
        "nesterov",
        0.1,
    )
    assert (speedrun.spec.filters, speedrun.spec.convs, speedrun.recipe.swap) == ((16, 32), 2, True)
    sprint = train_script.build_config(train_script.parse_args(["--recipe", "sprint", "--model", "cnn_aux"]))
    assert (sprint.spec.filters, sprint.spec.convs, sprint.spec.hidden, sprint.num_epochs, sprint.recipe.swap) == (
        (16, 32),
        1,
        (128,),
        20,
        False,
    )
    curve = train_script.build_config(
        train_script.parse_args(["--recipe", "speedrun", "--model", "cnn_aux", "--test-curve"])
    )
    assert curve.recipe.test_curve is True
    best = tmp_path / "best_hparams.json"
    best.write_text(json.dumps({"config": {"model": "cc", "hidden": [64, 64], "lr": 0.003}}))
    cfg = train_script.build_config(train_script.parse_args(["--hparams", str(best), "--epochs", "7"]))
    assert (cfg.spec.model, cfg.spec.hidden, cfg.recipe.lr, cfg.recipe.epochs) == ("cc", (64, 64), 0.003, 7)
    best.write_text("{not json")
    with pytest.raises(ValueError, match="not a best_hparams.json"):
        train_script.build_config(train_script.parse_args(["--hparams", str(best)]))


def small_cnn_aux(filters: str, hidden: str) -> list[str]:
    """A cnn_aux with the parameter-free comparer, small enough to train an epoch in seconds."""
    model = ["--model", "cnn_aux", "--filters", filters, "--hidden", hidden, "--comparer-type", "expected"]
    return [*model, "--epochs", "1", "--pairs", "100"]


@pytest.mark.slow
def test_members_and_tta_make_one_ensemble_model_per_round(tmp_path):
    import shutil

    out = tmp_path / "run"
    argv = [
        *small_cnn_aux("8", "16"),
        *["--lr", "1e-3", "--members", "2", "--member", "3", "--tta", "--out"],
        str(out),
        "--no-export",
        "--quiet",
    ]
    assert train_script.main(argv) == 0
    r = json.loads((out / "results.json").read_text())["rounds"][0]
    assert [m["member"] for m in r["members"]] == [3, 4]
    assert r["status"] == "ok"
    assert r["seconds"] == pytest.approx(sum(m["seconds"] for m in r["members"]), abs=0.02)
    members = [load_keras_model(out / "round-00" / f"member-{m}" / "model.keras") for m in (3, 4)]
    assert all((out / "round-00" / f"member-{m}" / "history.csv").is_file() for m in (3, 4))
    w3, w4 = (m.get_layer("classifier").get_weights()[0] for m in members)
    assert not np.allclose(w3, w4)  # other seeds, other weights
    model = load_keras_model(out / "round-00" / "model.keras")
    assert model.get_layer("test_time_views").views == ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))
    assert {m.name for m in model.layers} >= {"member0", "member1"}

    # A round stopped after its first member resumes there: member 3 is loaded, not refitted,
    # and member 4, refitted from its seed, gives the same ensemble.
    first = (out / "round-00" / "member-3" / "model.keras").stat().st_mtime_ns
    shutil.rmtree(out / "round-00" / "member-4")
    (out / "results.json").unlink()
    assert train_script.main(argv) == 0
    again = json.loads((out / "results.json").read_text())["rounds"][0]
    assert (out / "round-00" / "member-3" / "model.keras").stat().st_mtime_ns == first
    assert again["test_accuracy"] == r["test_accuracy"]
    assert again["members"][0] == r["members"][0]


@pytest.mark.slow
def test_a_run_draws_its_curves_and_shows_the_test_accuracy_each_epoch(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        *["--model", "mlp", "--hidden", "16", "--epochs", "2", "--rounds", "2", "--pairs", "100", "--out"],
        str(out),
        "--no-export",
    ]
    assert train_script.main(argv) == 0
    printed = capsys.readouterr().out
    epochs = [line for line in printed.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 4
    assert all("test_compare_accuracy:" in line for line in epochs)
    # The first epoch of a round traces the step: no estimate from it; then whole seconds.
    assert "eta" not in epochs[0]
    assert "eta" not in epochs[2]
    assert re.search(r" - eta: 0 s \(run: \d+ s\)$", epochs[1])
    assert epochs[3].endswith(" - eta: 0 s (run: 0 s)")
    assert (out / "curves.png").stat().st_size > 10_000


@pytest.mark.slow
def test_a_short_real_run_of_cnn_aux_learns_the_task(tmp_path):
    """A floor that a broken model, pipeline, loss or optimizer fails: the speedrun's settings
    for 8 epochs on 1000 real pairs (about 97% on test pairs; a coin reaches 50%)."""
    out = tmp_path / "run"
    argv = ["--model", "cnn_aux", "--recipe", "speedrun", "--epochs", "8", "--out", str(out), "--no-export", "--quiet"]
    assert train_script.main(argv) == 0
    (r,) = json.loads((out / "results.json").read_text())["rounds"]
    assert r["test_accuracy"] >= 0.90
    assert r["digit_test_accuracy"] >= 0.90
    assert r["train_accuracy"] >= 0.90


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--pairs", "3000"], "3000"),
        (["--export-dir", "/proc/x"], "--export-dir"),
    ],
    ids=["too-many-pairs", "unwritable-export-dir"],
)
def test_a_run_refused_before_it_began_leaves_no_run_folder(tmp_path, flags, message):
    from helpers import ROOT, run_python

    proc = run_python([str(ROOT / "scripts" / "train.py"), "--model", "cc_aux", "--epochs", "1", *flags], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert list(tmp_path.glob("runs/*")) == []  # no run folder claimed, or the one claimed gone again
