import numpy as np
import pytest

from keras_models.data.images import draw_round
from keras_models.data.pipeline import as_dataset


def epoch(ds):
    return [(x.numpy(), {k: v.numpy() for k, v in y.items()}) for x, y in ds]


def test_repaired_batches_are_new_pairs_with_targets_from_the_classes(embedded):
    pairs, _ = draw_round(*embedded, 120, 0)
    label_of = {pairs.x[i, j].tobytes(): pairs.classes[i, j] for i in range(len(pairs)) for j in (0, 1)}
    ds = as_dataset(pairs, pairs.targets(), 40, shuffle_seed=3, repair=True)
    first, second = epoch(ds), epoch(ds)
    seen = []
    for x, y in first:
        for i in range(len(x)):
            c1, c2 = (label_of[x[i, j].tobytes()] for j in (0, 1))
            assert (y["digit1"][i], y["digit2"][i]) == (c1, c2)
            assert y["compare"][i] == float(c1 <= c2)
            seen += [x[i, 0].tobytes(), x[i, 1].tobytes()]
    # Every digit once per epoch, almost all in pairs that were not drawn.
    assert sorted(seen) == sorted(label_of)
    drawn = {p.tobytes() for p in pairs.x}
    assert sum(x[i].tobytes() in drawn for x, _ in first for i in range(len(x))) < 5
    # New pairs every epoch, the same ones for the same seed.
    assert not np.array_equal(first[0][0], second[0][0])
    again = epoch(as_dataset(pairs, pairs.targets(), 40, shuffle_seed=3, repair=True))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again, strict=False))
    # Only the targets the model has.
    x, y = next(iter(as_dataset(pairs, {"compare": pairs.target}, 40, shuffle_seed=3, repair=True)))
    assert set(y) == {"compare"}


def test_repairing_needs_a_seed(embedded):
    pairs, _ = draw_round(*embedded, 20, 0)
    with pytest.raises(ValueError, match="shuffle seed"):
        as_dataset(pairs, pairs.targets(), 10, repair=True)
