"""A round's pairs: fresh from each round's seed by default, or the study's first round's pairs in
every round (--pairs-per-study once), the round's own seed then deciding only the training."""

import numpy as np
import pytest

from keras_models.core.errors import ConfigError
from keras_models.training.config import Config
from keras_models.training.rounds import RoundData


def test_fresh_pairs_differ_from_round_to_round_and_once_keeps_round_0s(embedded):
    fresh = Config(pairs=50, dev_pairs=20, seed=4)
    once = fresh.replace(pairs_per_study="once")
    r0, r3 = RoundData.draw(fresh, embedded, 0), RoundData.draw(fresh, embedded, 3)
    assert not np.array_equal(r0.train.x, r3.train.x)
    o0, o3 = RoundData.draw(once, embedded, 0), RoundData.draw(once, embedded, 3)
    for a, b in ((o0.train, o3.train), (o0.test, o3.test), (o0.dev, o3.dev), (r0.train, o3.train)):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.classes, b.classes)
    # The round's seed, which initialises and shuffles its model, is still its own.
    assert (o0.seed, o3.seed) == (4, 7)


def test_another_protocol_is_refused():
    with pytest.raises(ConfigError, match="unknown pairs per study .twice.; choose one of fresh, once"):
        Config(pairs_per_study="twice")
