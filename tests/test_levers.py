"""The levers, each one unit: off, each leaves the round, the model and the fit as they are;
on, each does its one thing."""

import numpy as np
import pytest

from keras_models.models.builder import build_model, loss_weights, optimizer
from keras_models.training.config import Config
from keras_models.training.levers import LEVERS, Graph, Swap


def test_levers_that_are_off_leave_everything_as_it_is(embedded):
    from keras_models.training.rounds import RoundData

    cfg = Config(model="cnn_aux", filters=(4,), hidden=(8,), pairs=50)
    data = RoundData.draw(cfg, embedded, 0)
    for lever in LEVERS:
        assert lever.rule(cfg) is None and lever.train_pairs(cfg, data.train) is data.train
        assert lever.batches(cfg) == {} and lever.optimizer(cfg) == {} and not lever.outside_images(cfg)
        assert lever.loss_weights(cfg, {"compare": 0.6}) == {"compare": 0.6}
        assert lever.digits(cfg.spec, "digits", Graph(0.0, 1.0)) == "digits"
    names = {layer.name for layer in build_model(cfg).layers}
    assert not any(n.startswith(("augment_", "distillation", "digit_temperature", "compare_logit")) for n in names)
    assert loss_weights(cfg) == {"compare": 0.6, "digit1": 0.2, "digit2": 0.2} and not optimizer(cfg, 10).use_ema


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
    )
    data = RoundData.draw(on, embedded, 0)
    assert len(data.train) == 100 and len(Swap().train_pairs(on.replace(swap=False), data.train)) == 100
    names = [layer.name for layer in build_model(on).layers]
    assert [n for n in names if n.startswith("augment_")] == ["augment_shift", "augment_rotate", "augment_elastic"]
    assert {"digit_temperature", "compare_temperature"} <= set(names)
    assert loss_weights(on) == {"compare": 1.0, "digit1": 1.0, "digit2": 1.0} and optimizer(on, 10).use_ema
    from keras_models.training.fitting import batch_options

    assert batch_options(on) == {"repair": True}
    with pytest.raises(ValueError, match="needs an aux model"):
        Config(model="cc", loss_weighting="learned")


@pytest.mark.slow
def test_pretraining_teaches_the_shared_classifier(embedded):
    """A few epochs on single digits outside the pairs, before any pair is seen, already make
    the pair model's digit outputs far better than chance."""
    import tensorflow as tf

    from keras_models.data.images import draw_round, unused_images
    from keras_models.data.pipeline import pixel_stats
    from keras_models.models.builder import build_model
    from keras_models.training.config import Config
    from keras_models.training.levers import Pretraining

    train, test = embedded
    pairs, test_pairs = draw_round(train, test, 500, seed=0)
    rest = unused_images(train, 500, seed=0)
    cfg = Config(model="cc_aux", hidden=(64,), lr=1e-3, pretrain_epochs=3, comparer_type="expected")
    model = build_model(cfg, *pixel_stats(pairs))
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
