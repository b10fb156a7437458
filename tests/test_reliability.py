"""Faults on purpose: a training process killed mid-round, NaN losses, unwritable outputs,
and determinism of a seeded run."""

import json
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT, clean_env

from keras_models.core.errors import RunError
from keras_models.training.callbacks import read_history
from keras_models.training.config import Config
from keras_models.training.run import run

EPOCHS = 60


def train_cmd(out):
    return [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        *["--model", "mlp", "--hidden", "16", "--epochs"],
        str(EPOCHS),
        "--rounds",
        "2",
        "--pairs",
        "200",
        "--out",
        str(out),
        "--no-export",
        "--quiet",
        "--backup-interval",
        "0",
    ]


@pytest.mark.slow
def test_sigkill_mid_round_then_resume(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        train_cmd(out), cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    history = out / "round-01" / "history.csv"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if len(read_history(history)) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training ended before it could be killed: " + proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(read_history(history))
    assert 3 <= killed_at < EPOCHS
    first = json.loads((out / "results.json").read_text())
    assert [r["round"] for r in first["rounds"]] == [0]
    assert (out / "backup" / "round-01").is_dir()

    again = subprocess.run(train_cmd(out), cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "round(s) 1 of 2 already done" in again.stdout
    results = json.loads((out / "results.json").read_text())
    assert [r["round"] for r in results["rounds"]] == [0, 1]
    assert results["rounds"][0] == first["rounds"][0]  # the finished round was not redone
    # The killed round went on from its last completed epoch (a backup every epoch here), not
    # from scratch ...
    assert results["rounds"][1]["epochs_run"] <= EPOCHS - killed_at + 1
    # results.json records the resumed part and the whole round.
    resumed = results["rounds"][1]
    assert resumed["epochs_total"] == EPOCHS
    assert resumed["seconds_total"] > resumed["seconds"]
    # ... and its history has every epoch once: no gap, no repeat.
    assert [r["epoch"] for r in read_history(history)] == list(range(1, EPOCHS + 1))
    assert not (out / "backup" / "round-01").exists()


def tiny(tmp_path, name, **kw):
    return Config(
        model="cnn_aux",
        filters=(4, 8),
        hidden=(16,),
        comparer=(8,),
        epochs=2,
        pairs=100,
        lr=1e-3,
        out=str(tmp_path / name),
        export=False,
        quiet=True,
        **kw,
    )


@pytest.mark.slow
def test_same_seed_same_results(tmp_path):
    a = run(tiny(tmp_path, "a"), log=lambda *_: None)
    b = run(tiny(tmp_path, "b"), log=lambda *_: None)
    run(tiny(tmp_path, "c", seed=1), log=lambda *_: None)
    assert [r["test_accuracy"] for r in a["rounds"]] == [r["test_accuracy"] for r in b["rounds"]]
    assert read_history(tmp_path / "a" / "round-00" / "history.csv") == read_history(
        tmp_path / "b" / "round-00" / "history.csv"
    )
    assert read_history(tmp_path / "a" / "round-00" / "history.csv") != read_history(
        tmp_path / "c" / "round-00" / "history.csv"
    )


@pytest.mark.slow
def test_nan_loss_fails_the_round_and_is_not_averaged(tmp_path):
    # An absurd learning rate overflows the weights within a few steps.
    cfg = Config(
        model="mlp",
        hidden=(16,),
        epochs=3,
        rounds=1,
        pairs=100,
        lr=1e30,
        out=str(tmp_path / "nan"),
        export=False,
        quiet=True,
    )
    results = run(cfg, log=lambda *_: None)
    assert results["rounds"][0]["status"] == "failed"
    assert "NaN" in results["rounds"][0]["message"]
    assert results["rounds_failed"] == 1
    assert results["test_accuracy_mean"] is None
    saved = json.loads((tmp_path / "nan" / "results.json").read_text())
    assert saved["rounds"][0]["status"] == "failed"


@pytest.mark.slow
def test_resume_refuses_a_folder_of_other_settings(tmp_path):
    cfg = Config(model="mlp", hidden=(8,), epochs=1, pairs=50, out=str(tmp_path / "r"), export=False, quiet=True)
    run(cfg, log=lambda *_: None)
    with pytest.raises(RunError, match=r"holds a run with other settings \(hidden\)"):
        run(cfg.replace(hidden=(9,)), log=lambda *_: None)


def test_unwritable_out_is_one_line(tmp_path, capsys):
    from keras_models.cli import train as train_script

    (tmp_path / "file").write_text("not a folder")
    code = train_script.main(
        ["--model", "mlp", "--epochs", "1", "--pairs", "50", "--out", str(tmp_path / "file" / "run"), "--quiet"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "\n" not in err
    assert (
        err == f"train.py: error: --out {tmp_path / 'file' / 'run'}: cannot write there, "
        f"{tmp_path / 'file'} is a file, not a folder"
    )


def test_unwritable_export_dir_is_refused_before_anything_trains(tmp_path, capsys):
    from keras_models.cli import train as train_script

    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "run"
    code = train_script.main(
        [
            "--model",
            "mlp",
            "--epochs",
            "1",
            "--pairs",
            "50",
            "--out",
            str(out),
            "--export-dir",
            str(tmp_path / "file" / "exports"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"train.py: error: --export-dir {tmp_path / 'file' / 'exports'}: cannot write")
    assert "\n" not in err
    assert not (out / "round-00").exists()
    assert not (out / "results.json").exists()


def test_default_run_folders_are_unique_within_a_second(tmp_path, monkeypatch):
    from keras_models.training.config import default_out

    monkeypatch.chdir(tmp_path)
    cfg = Config(model="mlp", seed=1)
    folders = {default_out(cfg.spec.model) for _ in range(3)}
    assert len(folders) == 3
    assert all((tmp_path / f).is_dir() for f in folders)


def start_and_wait(cmd, cwd, history, epochs=2):
    """A train.py process, once `history` holds `epochs` rows."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and len(read_history(history)) < epochs:
        time.sleep(0.02)
    assert proc.poll() is None, "training ended too early: " + proc.stderr.read()[-2000:]
    return proc


@pytest.mark.slow
def test_a_run_killed_in_its_first_round_refuses_other_settings_before_touching_its_backup(tmp_path):
    out = tmp_path / "run"
    proc = start_and_wait(train_cmd(out), ROOT, out / "round-00" / "history.csv")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "results.json").exists()
    backup = {p: p.stat().st_mtime_ns for p in (out / "backup").rglob("*") if p.is_file()}
    assert backup
    for flags, named in ((["--lr", "0.05"], "lr"), (["--model", "cc", "--comparer", "8"], "comparer, model")):
        cmd = train_cmd(out) + flags
        again = subprocess.run(cmd, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300)
        assert again.returncode == 2
        assert f"other settings ({named})" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in (out / "backup").rglob("*") if p.is_file()} == backup


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_names_the_command_that_resumes(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        *["--model", "mlp", "--hidden", "16", "--epochs"],
        str(EPOCHS),
        "--pairs",
        "200",
        "--no-export",
        "--quiet",
        "--backup-interval",
        "0",
    ]
    histories = lambda: list(tmp_path.glob("runs/mlp-*/round-00/history.csv"))  # noqa: E731
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 240
    while (
        time.time() < deadline and proc.poll() is None and not (histories() and len(read_history(histories()[0])) >= 2)
    ):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    (line,) = err.strip().splitlines()[-1:]
    out = histories()[0].parent.parent
    assert line.startswith("train.py: terminated; to resume: python scripts/train.py --model mlp")
    assert line.endswith(f"--out {out.relative_to(tmp_path)}")
    resume = line.split("to resume: ")[1].split()
    again = subprocess.run(
        [sys.executable, str(ROOT / resume[1]), *resume[2:]],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert [r["epoch"] for r in read_history(histories()[0])] == list(range(1, EPOCHS + 1))


@pytest.mark.slow
def test_a_finished_run_rerun_exports_once(tmp_path):
    cfg = Config(
        model="mlp",
        hidden=(8,),
        epochs=1,
        pairs=50,
        out=str(tmp_path / "r"),
        quiet=True,
        export_dir=str(tmp_path / "saved_models"),
    )
    lines = []
    first = run(cfg, log=lines.append)
    again = run(cfg, log=lines.append)
    assert again["export"] == first["export"] == str(tmp_path / "saved_models" / "mlp" / "1")
    assert sorted(p.name for p in (tmp_path / "saved_models" / "mlp").iterdir()) == ["1"]
    assert any(line.startswith("already exported as") for line in lines)


def test_a_second_run_on_the_same_folder_names_the_process_holding_it(tmp_path, capsys):
    import os

    from keras_models.cli import train as train_script
    from keras_models.core.files import lock_folder

    (tmp_path / "run").mkdir()
    held = lock_folder(tmp_path / "run")
    try:
        code = train_script.main(
            ["--model", "mlp", "--epochs", "1", "--pairs", "50", "--out", str(tmp_path / "run"), "--quiet"]
        )
    finally:
        held.close()
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert f"in use by process {os.getpid()}" in err
    assert "\n" not in err


@pytest.mark.parametrize(
    ("config", "results", "message"),
    [
        ("[1]", None, "config.json: holds list, not a run's JSON object; move it away to start over"),
        (None, "[]", "results.json: holds list, not a run's JSON object; move it away to start over"),
        (None, "{}", "holds no run's settings"),
        (None, {"rounds": "zz"}, "results.json: its `rounds` is not a list of rounds; move it away to start over"),
        (None, {"rounds": [{"round": "a"}]}, 'results.json: holds a round this run cannot read ({"round": "a"})'),
        (None, {"rounds": [{"round": 7, "status": "ok", "seconds": 1.0}]}, "holds a round this run cannot read"),
    ],
    ids=["config-list", "results-list", "results-empty", "rounds-text", "round-text", "round-beyond"],
)
def test_run_files_of_the_wrong_shape_are_one_line_naming_the_file(tmp_path, capsys, config, results, message):
    from keras_models.cli import train as train_script
    from keras_models.training.config import save_config

    out = tmp_path / "run"
    out.mkdir()
    cfg = Config(model="mlp", hidden=(8,), epochs=1, pairs=50)
    if config is None:
        save_config(cfg, out / "config.json")
    else:
        (out / "config.json").write_text(config)
    if results is not None:
        body = results if isinstance(results, str) else json.dumps({"config": cfg.to_dict(), **results})
        (out / "results.json").write_text(body)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    argv = ["--model", "mlp", "--hidden", "8", "--epochs", "1", "--pairs", "50", "--out", str(out), "--no-export"]
    assert train_script.main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert message in err
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".lock"} == before  # nothing touched


@pytest.mark.parametrize("config", ["[1]", "null"])
def test_hparams_whose_config_is_not_an_object_is_one_line(tmp_path, capsys, config):
    from keras_models.cli import train as train_script

    (tmp_path / "best_hparams.json").write_text(f'{{"config": {config}}}')
    assert train_script.main(["--hparams", str(tmp_path / "best_hparams.json"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    assert "best_hparams.json: its `config` is" in err
    assert not (tmp_path / "r").exists()


def test_export_beside_a_config_that_is_a_list_is_one_line(tmp_path, capsys):
    from keras_models.cli import export as export_script
    from keras_models.models.builder import build_model

    build_model(Config(model="mlp", hidden=(8,)).spec).save(tmp_path / "model.keras")
    (tmp_path / "config.json").write_text("[1, 2]")
    argv = ["--model-file", str(tmp_path / "model.keras"), "--export-dir", str(tmp_path / "exports")]
    assert export_script.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    assert "config.json: holds list, not a run's JSON object" in err
    assert not (tmp_path / "exports").exists()


@pytest.fixture
def full_disk(tmp_path):
    """A real file system of 1.5 MB, full before a round's first backup is written."""
    import shutil

    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0 or not shutil.disk_usage(mount).total:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()[:80]}); needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.slow
def test_train_and_export_onto_a_full_disk_end_in_one_line_and_leave_nothing_half_written(full_disk, tmp_path):
    argv = ["--model", "cc", "--epochs", "2", "--pairs", "100", "--quiet", "--backup-interval", "0"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *argv, "--out", str(full_disk / "run")],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]  # not a segmentation fault (139)
    assert "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("train.py:")]
    assert line.startswith("train.py: error: cannot write or read ")
    assert line.endswith(": No space left on device")
    leftovers = [p.name for p in full_disk.rglob("*") if ".tmp" in p.name or p.name.endswith(".h5")]
    assert leftovers == []

    ok = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "--model", "mlp", "--hidden", "8", "--epochs", "1"]
        + ["--pairs", "50", "--quiet", "--no-export", "--out", str(tmp_path / "small")],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    for p in full_disk.iterdir():
        subprocess.run(["rm", "-rf", str(p)], check=True)
    import shutil

    # 20 kB left: a SavedModel of this model does not fit.
    (full_disk / "filler").write_bytes(b"\0" * (shutil.disk_usage(full_disk).free - 20_000))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export.py"), "--model-file", str(tmp_path / "small" / "model.keras")]
        + ["--export-dir", str(full_disk / "saved_models")],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("export.py:")]
    assert line.startswith("export.py: error: cannot write or read ")
    assert [p.name for p in (full_disk / "saved_models" / "mlp").iterdir()] == []
