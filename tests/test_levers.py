"""The study's levers (experiments/levers.py), each through the one seam of training
(keras_models.training.levers): off, nothing changes; on, each does its one thing; each ablation
row that uses one trains the history it trained when the lever was a setting of the product."""

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from experiments.levers import Distill, Elastic, LearnedLossWeights, MovingAverage, Pretrain, Repair, WeightDecay
from keras_models.core.errors import ConfigError, RunError
from keras_models.models.builder import loss_weights
from keras_models.training.config import Config
from keras_models.training.fitting import new_model
from keras_models.training.run import run

# Recorded by commit 3be2f4f's scripts/train.py, where the levers were settings, with the flags
# of each case (the file's "base", "common" and "cases"), per kernel library, on a 2-core AMD EPYC
# (AVX2), 2026-12-06.
RECORDED = Path(__file__).with_name("data") / "levers_3be2f4f.json"
# The cases as levers now: what each flag of the recording became.
AS_LEVERS = {
    "decay": (WeightDecay(0.5),),
    "ema": (MovingAverage(0.99),),
    "repair": (Repair(),),
    "pretrained": (Pretrain(2),),
    "elastic": (Elastic(),),
    "learned_weights": (LearnedLossWeights(),),
    "distilled": (Distill(teachers=1, temperature=4.0),),
}
TOLERANCE = 1e-4  # as tests/test_behaviour.py's: a reordered sum, not a changed computation
TINY = Config(model="cnn_aux", filters=(4,), hidden=(8,), comparer_type="expected", augment=True, pairs=50)


def strategy():
    import tensorflow as tf

    return tf.distribute.get_strategy()


def built(cfg, levers, embedded):
    from keras_models.data.images import draw_round

    pairs, _ = draw_round(*embedded, cfg.recipe.pairs, seed=0)
    return new_model(cfg, pairs, strategy(), levers)


def test_without_levers_nothing_of_theirs_is_there(embedded):
    model = built(TINY, (), embedded)
    names = {layer.name for layer in model.layers}
    assert not names & {"augment_elastic", "distillation", "digit_temperature", "compare_temperature"}
    assert type(model.optimizer) is keras.optimizers.Adam
    assert not model.optimizer.use_ema
    assert loss_weights(TINY.spec) == {"compare": 0.6, "digit1": 0.2, "digit2": 0.2}


def test_each_lever_does_its_one_thing_through_the_seam(embedded):
    cfg = TINY.replace(comparer_type="learned", comparer=(8,))
    model = built(cfg, (Elastic(), LearnedLossWeights(), MovingAverage(0.9)), embedded)
    names = [layer.name for layer in model.layers]
    assert [n for n in names if n.startswith("augment_")] == ["augment_shift", "augment_rotate", "augment_elastic"]
    assert {"digit_temperature", "compare_temperature"} <= set(names)
    assert model.optimizer.use_ema
    assert model.optimizer.ema_momentum == 0.9
    model = built(cfg, (MovingAverage(0.9), WeightDecay(0.5)), embedded)
    opt = model.optimizer
    assert isinstance(opt, keras.optimizers.AdamW)
    assert (opt.weight_decay, opt.use_ema, opt.ema_momentum) == (0.5, True, 0.9)
    opt.build(model.trainable_variables)
    assert {v.name for v in model.trainable_variables if opt._use_weight_decay(v)} == {"kernel"}


def test_repair_deals_the_digits_of_each_batch_into_new_pairs(embedded):
    from keras_models.data.images import draw_round
    from keras_models.data.pipeline import as_dataset

    pairs, _ = draw_round(*embedded, 40, seed=3)
    targets = pairs.targets(["compare", "digit1", "digit2"])
    kept = next(iter(as_dataset(pairs, targets, 40, shuffle_seed=1)))
    dealt = Repair().dataset(pairs, targets, 40, seed=1)
    first = [(x.numpy(), {k: v.numpy() for k, v in y.items()}) for x, y in dealt]
    x, y = first[0]
    assert sorted(x.sum(axis=(2, 3)).ravel()) == pytest.approx(sorted(kept[0].numpy().sum(axis=(2, 3)).ravel()))
    assert ((y["digit1"] <= y["digit2"]) == y["compare"].ravel().astype(bool)).all()
    again = [(x.numpy(), {k: v.numpy() for k, v in y.items()}) for x, y in dealt]
    assert not np.array_equal(first[0][0], again[0][0])  # each epoch deals anew


def test_a_lever_refuses_what_it_cannot_act_on_in_one_line(embedded, tmp_path):
    cases = [
        (WeightDecay(0.5), Config(model="cnn_aux", optimizer="nesterov"), "needs --optimizer adam"),
        (Elastic(), Config(model="cnn"), "needs a weight-sharing model"),
        (LearnedLossWeights(), Config(model="cnn_cc"), "needs an aux model"),
        (Pretrain(1), Config(model="cnn_aux", pairs=1250), "no training images outside the 1250 pairs"),
        (Distill(1), Config(model="cnn_aux", seed=2**32 - 1000), "teachers reach"),
    ]
    for lever, cfg, message in cases:
        with pytest.raises(ConfigError, match=message):
            run(cfg.replace(out=str(tmp_path / "r"), quiet=True), images=embedded, levers=(lever,))
    with pytest.raises(ConfigError, match="a run with levers trains its rounds alone"):
        run(Config(model="cnn_aux", stack=2, rounds=2, out=str(tmp_path / "s")), images=embedded, levers=(Elastic(),))
    assert not (tmp_path / "r").exists()


def history(folder: Path) -> list[dict]:
    with open(folder / "round-00" / "history.csv") as f:
        return list(csv.DictReader(f))


def recorded_case(case: str) -> tuple[list[str], list[dict]]:
    """The flags of the case less its lever's, and the history recorded under this kernel library."""
    from keras_models.core.machine import cpu, onednn_enabled

    recorded = json.loads(RECORDED.read_text())
    if cpu()["vector_extension"] != recorded["vector_extension"]:
        # Kernels of other vector widths round otherwise (tests/test_behaviour.py's speedrun).
        pytest.skip(f"the histories were recorded on {recorded['machine']}; this CPU rounds otherwise")
    return recorded["base"] + recorded["common"], recorded["onednn" if onednn_enabled() else "eigen"][case]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(AS_LEVERS))
def test_an_ablation_lever_trains_the_history_it_trained_as_a_setting(case, tmp_path, embedded):
    """The moved levers compute what the settings computed: the same losses and accuracies per
    epoch, for the same seed, as 3be2f4f's train.py recorded (tests/data/levers_3be2f4f.json)."""
    from keras_models.cli import train as train_cli

    settings, before = recorded_case(case)
    cfg = train_cli.build_config(train_cli.parse_args([*settings, "--out", str(tmp_path)]))
    results = run(cfg, log=lambda *_: None, levers=AS_LEVERS[case])
    assert results["rounds_ok"] == 1
    assert results["levers"] == [lever.describe() for lever in AS_LEVERS[case]]
    now = history(tmp_path)
    assert [list(row) for row in now] == [list(row) for row in before]
    for epoch, (a, b) in enumerate(zip(now, before, strict=True), 1):
        for column in b:
            assert float(a[column]) == pytest.approx(float(b[column]), abs=TOLERANCE), (epoch, column)


@pytest.mark.slow
def test_distill_fits_its_teacher_first_keeps_the_student_alone_and_a_resume_keeps_the_teacher(tmp_path, embedded):
    from keras_models.models.saving import load_keras_model

    cfg = Config(model="cnn_aux", filters=(4, 8), hidden=(16,), epochs=2, pairs=100, lr=1e-3, out=str(tmp_path))
    cfg = cfg.replace(export=False, quiet=True)
    results = run(cfg, log=lambda *_: None, images=embedded, levers=(Distill(1, 4.0),))
    r = results["rounds"][0]
    (teacher,) = r["lever_fits"]
    assert (r["status"], teacher["teacher"]) == ("ok", 0)
    assert r["seconds"] > teacher["seconds"] > 0  # the student's seconds and the teacher's
    student = load_keras_model(tmp_path / "round-00" / "model.keras")
    first_teacher = load_keras_model(tmp_path / "round-00" / "teacher-0" / "model.keras")
    assert "distillation" not in {layer.name for layer in student.layers}
    assert student.count_params() == first_teacher.count_params()
    # A round stopped after its teacher resumes with it: loaded, not refitted.
    mtime = (tmp_path / "round-00" / "teacher-0" / "model.keras").stat().st_mtime_ns
    (tmp_path / "results.json").unlink()
    again = run(cfg, log=lambda *_: None, images=embedded, levers=(Distill(1, 4.0),))
    assert (tmp_path / "round-00" / "teacher-0" / "model.keras").stat().st_mtime_ns == mtime
    assert again["rounds"][0]["lever_fits"][0]["seconds"] == teacher["seconds"]
    # The same folder with other levers is another run.
    with pytest.raises(RunError, match="other levers"):
        run(cfg.replace(rounds=2), log=lambda *_: None, images=embedded, levers=(Distill(1, 2.0),))


@pytest.mark.slow
def test_pretraining_teaches_the_shared_classifier(embedded):
    """A few epochs on single digits outside the pairs, before any pair is seen, already make
    the pair model's digit outputs far better than chance."""
    from experiments.lever_layers import PretrainClassifier
    from keras_models.data.images import draw_round, unused_images
    from keras_models.data.pipeline import pixel_stats
    from keras_models.models.builder import build_model

    train, test = embedded
    pairs, test_pairs = draw_round(train, test, 500, seed=0)
    cfg = Config(model="cc_aux", hidden=(64,), lr=1e-3, comparer_type="expected", quiet=True)
    model = build_model(cfg.spec, *pixel_stats(pairs))
    callback = PretrainClassifier(unused_images(train, 500, seed=0), cfg, strategy(), epochs=3)
    callback.set_model(model)
    callback.on_train_begin()
    out = model.predict(test_pairs.x, verbose=0)
    assert np.mean(np.argmax(out["digit1"], axis=1) == test_pairs.classes[:, 0]) > 0.5  # chance: 0.1


@pytest.mark.slow
@pytest.mark.parametrize(
    "levers",
    [
        (Distill(1),),
        (MovingAverage(), LearnedLossWeights(), Elastic()),
        (Pretrain(1), Repair(), WeightDecay(1e-4)),
    ],
    ids=["distill", "average-learned-elastic", "pretrain-repair-decay"],
)
def test_every_lever_trains_under_mixed_bfloat16(levers, tmp_path, embedded):
    from keras_models.models.saving import load_keras_model

    cfg = Config(model="cnn_aux", filters=(4, 8), hidden=(8,), epochs=2, pairs=100, precision="mixed_bfloat16")
    cfg = cfg.replace(augment=True, swap=True, out=str(tmp_path), export=False, quiet=True)
    results = run(cfg, log=lambda *_: None, images=embedded, levers=levers)
    [round_] = results["rounds"]
    assert round_["status"] == "ok"
    for path in sorted(tmp_path.glob("round-00/**/history.csv")):
        rows = list(csv.DictReader(path.open()))
        assert len(rows) == 2
        assert all(np.isfinite(float(r["loss"])) for r in rows)
    model = load_keras_model(tmp_path / "model.keras")
    dense = [layer for layer in model.get_layer("classifier").layers if layer.name.endswith("_dense1")]
    assert [layer.compute_dtype for layer in dense] == ["bfloat16"]
    assert model.predict(np.zeros((2, 2, 14, 14), np.float32), verbose=0)["compare"].dtype == np.float32
