"""The peer's pairs: what `--peer` hands to ../shared/bench/peer_lenet.py are the very pairs that
train.py's rounds draw."""

import json

import numpy as np

from experiments.peer import peer_seconds, write_round_pairs
from keras_models.training.config import Config
from keras_models.training.rounds import RoundData


def test_the_pairs_file_holds_each_rounds_own_training_and_test_pairs(tmp_path, embedded):
    path = write_round_pairs(tmp_path / "pairs.npz", "embedded", None, pairs=40, seed=7, rounds=3)
    given = np.load(path)
    assert given["train_x"].shape == (3, 40, 2, 14, 14)
    assert given["test_classes"].shape == (3, 40, 2)
    cfg = Config(pairs=40, seed=7)
    for r in range(3):
        data = RoundData.draw(cfg, embedded, r)
        np.testing.assert_array_equal(given["train_x"][r], data.train.x)
        np.testing.assert_array_equal(given["train_classes"][r], data.train.classes)
        np.testing.assert_array_equal(given["test_x"][r], data.test.x)
        np.testing.assert_array_equal(given["test_classes"][r], data.test.classes)
    # Pixels, as the peer normalises them itself by the training pairs' mean and std.
    assert given["train_x"].max() > 200


def test_the_budget_is_the_peers_own_recipe_whichever_form_peer_json_has(tmp_path):
    (tmp_path / "peer.json").write_text(json.dumps({"rows": [{"train_s_per_round": 2.5}, {"train_s_per_round": 3}]}))
    assert peer_seconds(tmp_path) == 2.5
    (tmp_path / "peer.json").write_text(json.dumps({"train_s_per_round": 1.5}))
    assert peer_seconds(tmp_path) == 1.5
    assert peer_seconds(tmp_path / "nowhere") is None
