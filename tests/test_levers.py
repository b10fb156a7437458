"""The levers, each at its Keras home: off, each leaves the round, the model and the fit as they
are; on, each does its one thing (layers in the graph, an optimizer option, a pipeline option,
the round's pairs, a callback)."""

import csv

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
    assert len(data.train) == 50
    assert data.unused is None
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
    assert len(data.train) == 100
    assert len(data.unused.images) == len(embedded[0].images) - 100
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

    from keras_models.data.images import draw_round, unused_images
    from keras_models.data.pipeline import pixel_stats
    from keras_models.models.builder import build_model
    from keras_models.training.config import Config
    from keras_models.training.fitting import PretrainClassifier

    train, test = embedded
    pairs, test_pairs = draw_round(train, test, 500, seed=0)
    rest = unused_images(train, 500, seed=0)
    cfg = Config(model="cc_aux", hidden=(64,), lr=1e-3, pretrain_epochs=3, comparer_type="expected", quiet=True)
    model = build_model(cfg.spec, *pixel_stats(pairs))
    callback = PretrainClassifier(rest, cfg, tf.distribute.get_strategy())
    callback.set_model(model)
    callback.on_train_begin()
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
    assert round_["status"] == "ok"
    # Every fit of the round trained its epochs with finite losses...
    histories = sorted(tmp_path.glob("round-00/**/history.csv"))
    assert len(histories) == 1 + levers.get("teachers", 0) + (levers.get("members", 1) - 1)
    for path in histories:
        rows = list(csv.DictReader(path.open()))
        assert len(rows) == 2
        assert all(np.isfinite(float(r["loss"])) for r in rows)
    # ... with the classifier's arithmetic in bfloat16, and the model still answers float32.
    from keras_models.models.saving import load_keras_model

    model = load_keras_model(tmp_path / "model.keras")
    members = [m for m in model.layers if m.name.startswith("member")] or [model]
    for member in members:
        dense = [layer for layer in member.get_layer("classifier").layers if layer.name.endswith("_dense1")]
        assert [layer.compute_dtype for layer in dense] == ["bfloat16"]
    assert model.predict(np.zeros((2, 2, 14, 14), np.float32), verbose=0)["compare"].dtype == np.float32
    # The lever was there: teachers and members are recorded by the round.
    assert len(round_.get("teachers") or []) == levers.get("teachers", 0)
    assert len(round_.get("members") or [{}]) == levers.get("members", 1)
