"""Atomic writes: the target holds the old content or the new, never a part of either."""

import json
import os

import pytest

from keras_models.core.files import atomic_write_json, atomic_write_text
from keras_models.models.saving import atomic_save_model


def test_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(tmp_path) == ["results.json"]


def test_a_failed_write_keeps_the_old_file_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "history.csv"
    atomic_write_text(path, "old\n")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(path, "new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["history.csv"]


def test_a_model_that_fails_to_save_leaves_the_old_file(tmp_path):
    class Unsavable:
        def save(self, path):
            with open(path, "w") as f:
                f.write("half")
            raise RuntimeError("killed half-way")

    path = tmp_path / "model.keras"
    path.write_text("the old model")
    with pytest.raises(RuntimeError):
        atomic_save_model(Unsavable(), path)
    assert path.read_text() == "the old model"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_results_files_are_as_readable_as_any_other_file(tmp_path):
    import os

    from keras_models.core.files import atomic_write_json

    atomic_write_json(tmp_path / "results.json", {"a": 1})
    (tmp_path / "plain.txt").write_text("x")
    mode = os.stat(tmp_path / "results.json").st_mode & 0o777
    assert mode == os.stat(tmp_path / "plain.txt").st_mode & 0o777
    assert mode & 0o044  # group and others may read it under the usual umask
