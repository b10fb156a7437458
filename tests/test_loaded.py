"""A version is served only when all of it loads: its model, its model card, and its answer to
a probe pair (keras_models.serving.loaded); the newest that loads is chosen once, for the
server and predict.py alike."""

import json
import re
import shutil

import keras
import numpy as np
import pytest
from helpers import run_script, tiny_model

from keras_models.core.errors import ModelFileError
from keras_models.serving.export import METADATA, export_saved_model
from keras_models.serving.loaded import load_export, load_version, newest_loadable


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    card = {"model": "cnn_aux", "pixel_range": [0.0, 255.0]}
    return export_saved_model(tiny_model(4), tmp_path_factory.mktemp("loaded") / "saved_models", "cnn_aux", card)


def copy_version(good, base, version, card) -> None:
    shutil.copytree(good, base / str(version))
    if card is not None:
        (base / str(version) / METADATA).write_text(card)


@pytest.mark.parametrize(
    ("card", "says"),
    [
        ("[1, 2]", "not a model card"),
        ("{not json", "not a model card"),
        ('{"pixel_range": null}', "pixel_range is not [low, high], got None"),
        ('{"pixel_range": [255, 0]}', "pixel_range is not [low, high]"),
        ('{"pixel_range": ["0", 255]}', "pixel_range is not [low, high]"),
    ],
)
def test_a_version_whose_card_is_wrong_does_not_load_and_the_one_before_is_chosen(good, tmp_path, card, says):
    base = tmp_path / "cnn_aux"
    copy_version(good, base, 1, None)
    copy_version(good, base, 2, card)
    with pytest.raises(ModelFileError, match=f"metadata.json: (its )?{re.escape(says)}"):
        load_version(base / "2")
    skipped = []
    found = load_export(base, on_skip=skipped.append)
    assert found.version == 1
    assert len(skipped) == 1
    assert skipped[0].startswith("skipping version 2:")


def test_a_version_that_answers_no_probability_does_not_load(good, tmp_path):
    pair = keras.Input((2, 14, 14), name="pair")
    flat = keras.layers.Flatten()(pair)
    # A compare output that is not a probability: a linear unit whose bias puts a blank pair at 5.
    compare = keras.layers.Dense(1, kernel_initializer="zeros")(flat)
    compare = keras.layers.Rescaling(1.0, offset=5.0, name="compare")(compare)
    bad = keras.Model(pair, {"compare": compare}, name="bad")
    path = export_saved_model(bad, tmp_path, "cnn_aux")
    with pytest.raises(ModelFileError, match="output 'compare' to a probe pair is not a probability"):
        load_version(path)
    # The base path falls back past it to the version below.
    copy_version(good, tmp_path / "cnn_aux", 2, None)
    shutil.move(tmp_path / "cnn_aux" / "1", tmp_path / "cnn_aux" / "3")
    assert load_export(tmp_path / "cnn_aux").version == 2


def test_newest_loadable_looks_above_a_version_only(good, tmp_path):
    base = tmp_path / "cnn_aux"
    for v in (1, 2):
        copy_version(good, base, v, None)
    assert newest_loadable(base, "tensorflow").version == 2
    assert newest_loadable(base, "tensorflow", above=1).version == 2
    assert newest_loadable(base, "tensorflow", above=2) is None


@pytest.mark.slow
def test_predict_on_a_version_with_a_wrong_card_is_one_line(good, tmp_path, pool):
    base = tmp_path / "cnn_aux"
    copy_version(good, base, 1, '{"pixel_range": null}')
    np.save(tmp_path / "p.npy", pool[:2])
    proc = run_script("predict.py", str(base / "1"), str(tmp_path / "p.npy"))
    assert proc.returncode == 2
    assert "pixel_range is not [low, high]" in proc.stderr
    assert "Traceback" not in proc.stderr
    # The base path answers from the version below a broken one, and says which it skipped.
    copy_version(good, base, 0, None)
    proc = run_script("predict.py", str(base), str(tmp_path / "p.npy"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skipping version 1" in proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 2
    assert json.loads(proc.stdout.splitlines()[0])["compare"] >= 0
