"""The training pipeline (keras_models.data.pipeline): each epoch reshuffled from the round's
seed, every pair seen once an epoch, the same order again for the same seed."""

import numpy as np

from keras_models.data.images import draw_round
from keras_models.data.pipeline import SCORING_BATCH, as_dataset, pixel_stats, split_validation


def epoch(ds):
    return [(x.numpy(), {k: v.numpy() for k, v in y.items()}) for x, y in ds]


def test_each_epoch_is_a_new_order_of_the_same_pairs_and_the_seed_repeats_it(embedded):
    pairs, _ = draw_round(*embedded, 40, seed=3)
    ds = as_dataset(pairs, pairs.targets(), 16, shuffle_seed=5)
    first, second = epoch(ds), epoch(ds)
    assert [len(x) for x, _ in first] == [16, 16, 8]
    order = np.concatenate([y["digit1"] for _, y in first]), np.concatenate([y["digit1"] for _, y in second])
    assert sorted(order[0]) == sorted(order[1]) == sorted(pairs.classes[:, 0])
    assert not np.array_equal(*order)
    again = epoch(as_dataset(pairs, pairs.targets(), 16, shuffle_seed=5))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert epoch(as_dataset(pairs, pairs.targets(), SCORING_BATCH))[0][0].shape == (40, 2, 14, 14)


def test_the_validation_split_is_the_last_pairs_and_the_statistics_the_pixels(embedded):
    pairs, _ = draw_round(*embedded, 50, seed=1)
    train, val = split_validation(pairs, 0.2)
    assert (len(train), len(val)) == (40, 10)
    np.testing.assert_array_equal(val.x, pairs.x[40:])
    assert split_validation(pairs, 0.0) == (pairs, None)
    assert pixel_stats(pairs) == (float(pairs.x.mean()), float(pairs.x.var()))
