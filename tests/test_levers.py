"""The levers, each at its Keras home: off, each leaves the round, the model and the fit as they
are; on, each does its one thing (layers in the graph, an optimizer option, a pipeline option,
the round's pairs, a callback)."""

import numpy as np
import pytest

from keras_models.models.builder import build_model, loss_weights
from keras_models.training.compile import optimizer
from keras_models.training.config import Config

LEVER_LAYERS = ("augment_", "distillation", "digit_temperature", "compare_logit")


def test_levers_that_are_off_leave_everything_as_it_is(embedded):
    from keras_models.training.rounds import RoundData

    cfg = Config(model="cnn_aux", filters=(4,), hidden=(8,), pairs=50)
    data = RoundData.draw(cfg, embedded, 0)
    assert len(data.train) == 50 and data.unused is None
    names = {layer.name for layer in build_model(cfg.spec).layers}
    assert not any(n.startswith(LEVER_LAYERS) for n in names)
    assert loss_weights(cfg.spec) == {"compare": 0.6, "digit1": 0.2, "digit2": 0.2}
    assert not optimizer(cfg.recipe, 1, 10).use_ema


def test_each_lever_on_does_its_one_thing(embedded):
    from keras_models.training.rounds import RoundData

    on = Config(
        model="cc_aux",
        hidden=(8,),
        pairs=50,
        swap=True,
        repair=True,
        ema=True,
        loss_weighting="learned",
        elastic=True,
        augment=True,
        shift=1,
        rotation=5.0,
        pretrain_epochs=1,
    )
    data = RoundData.draw(on, embedded, 0)
    assert len(data.train) == 100 and len(data.unused.images) == len(embedded[0].images) - 100
    swapped = data.train.classes[50:]
    assert (swapped == data.train.classes[:50, ::-1]).all()
    names = [layer.name for layer in build_model(on.spec).layers]
    assert [n for n in names if n.startswith("augment_")] == ["augment_shift", "augment_rotate", "augment_elastic"]
    assert {"digit_temperature", "compare_temperature"} <= set(names)
    assert loss_weights(on.spec) == {"compare": 1.0, "digit1": 1.0, "digit2": 1.0}
    assert optimizer(on.recipe, 1, 10).use_ema
    with pytest.raises(ValueError, match="needs an aux model"):
        Config(model="cc", loss_weighting="learned")


def test_repair_deals_the_digits_of_each_batch_into_new_pairs(embedded):
    """The pipeline's re-pairing keeps every digit of a batch and recomputes the targets."""
    from keras_models.data.images import draw_round
    from keras_models.data.pipeline import as_dataset

    pairs, _ = draw_round(*embedded, 40, seed=3)
    targets = pairs.targets(["compare", "digit1", "digit2"])
    kept = next(iter(as_dataset(pairs, targets, 40, shuffle_seed=1)))
    dealt = next(iter(as_dataset(pairs, targets, 40, shuffle_seed=1, repair=True)))
    x, y = dealt[0].numpy(), {k: v.numpy() for k, v in dealt[1].items()}
    assert sorted(x.sum(axis=(2, 3)).ravel()) == pytest.approx(sorted(kept[0].numpy().sum(axis=(2, 3)).ravel()))
    assert ((y["digit1"] <= y["digit2"]) == y["compare"].ravel().astype(bool)).all()


@pytest.mark.slow
def test_pretraining_teaches_the_shared_classifier(embedded):
    """A few epochs on single digits outside the pairs, before any pair is seen, already make
    the pair model's digit outputs far better than chance."""
    import tensorflow as tf
    from keras_models.training.levers import Pretraining

    from keras_models.data.images import draw_round, unused_images
    from keras_models.data.pipeline import pixel_stats
    from keras_models.models.builder import build_model
    from keras_models.training.config import Config

    train, test = embedded
    pairs, test_pairs = draw_round(train, test, 500, seed=0)
    rest = unused_images(train, 500, seed=0)
    cfg = Config(model="cc_aux", hidden=(64,), lr=1e-3, pretrain_epochs=3, comparer_type="expected")
    model = build_model(cfg.spec, *pixel_stats(pairs))
    Pretraining().before_fit(model, cfg.replace(quiet=True), rest, tf.distribute.get_strategy())
    out = model.predict(test_pairs.x, verbose=0)
    assert np.mean(np.argmax(out["digit1"], axis=1) == test_pairs.classes[:, 0]) > 0.5  # chance: 0.1


@pytest.mark.slow
@pytest.mark.parametrize(
    "levers",
    [
        {"teachers": 1},
        {"tta": True, "members": 2},
        {"ema": True, "loss_weighting": "learned", "elastic": True, "augment": True},
        {"pretrain_epochs": 1, "repair": True, "swap": True, "weight_decay": 1e-4},
    ],
    ids=["teachers", "tta-members", "ema-learned-elastic", "pretrain-repair-swap-decay"],
)
def test_every_lever_trains_under_mixed_bfloat16(levers, tmp_path):
    from keras_models.training.run import run

    cfg = Config(model="cnn_aux", filters=(4, 8), hidden=(8,), epochs=2, pairs=100, precision="mixed_bfloat16")
    results = run(cfg.replace(**levers, out=str(tmp_path), export=False, quiet=True), log=lambda *_: None)
    [round_] = results["rounds"]
    assert round_["status"] == "ok" and 0.0 <= round_["test_accuracy"] <= 1.0
