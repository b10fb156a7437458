import numpy as np
import pytest

from keras_models.training.callbacks import read_history
from keras_models.training.config import Config
from keras_models.training.fitting import restart, reusable
from keras_models.training.rounds import RoundData, RoundRunner

# A small cnn_aux with every part a round sets through weights: pixel statistics, the shifts'
# fill, batch norm, dropout's and the shifts' random generators, Nesterov momentum, one-cycle.
SMALL = dict(
    model="cnn_aux",
    filters=(4, 8),
    hidden=(16,),
    pairs=200,
    epochs=2,
    augment=True,
    shift=1,
    rotation=0.0,
    comparer_type="expected",
    optimizer="nesterov",
    lr=0.1,
    lr_schedule="onecycle",
    quiet=True,
)


def runner(cfg, work, rounds):
    import tensorflow as tf

    return RoundRunner(cfg, tf.distribute.get_strategy(), work, rounds)


@pytest.mark.slow
def test_a_round_on_the_traced_step_of_the_round_before_equals_the_round_alone(tmp_path, embedded):
    cfg = Config(**SMALL)
    together = runner(cfg, tmp_path / "together", 2)
    m0, _ = together.run(RoundData.draw(cfg, embedded, 0))
    step = m0.train_function
    m1, r1 = together.run(RoundData.draw(cfg, embedded, 1))
    assert m1 is m0
    assert m1.train_function is step
    alone, a1 = runner(cfg, tmp_path / "alone", 1).run(RoundData.draw(cfg, embedded, 1))
    # The round alone traced a step of its own: the comparison below is of two traced steps.
    assert alone.train_function is not step
    for key in ("train_accuracy", "test_accuracy", "digit_test_accuracy"):
        assert getattr(r1, key) == pytest.approx(getattr(a1, key), abs=1e-9)
    together = read_history(tmp_path / "together" / "round-01" / "history.csv")
    apart = read_history(tmp_path / "alone" / "round-01" / "history.csv")
    assert [set(r) for r in together] == [set(r) for r in apart]
    assert len(together) == cfg.num_epochs
    for a, b in zip(together, apart, strict=False):
        np.testing.assert_allclose([a[k] for k in sorted(a)], [b[k] for k in sorted(a)], rtol=1e-5, atol=1e-6)
    # Round 1 did not start from where round 0 ended: its first epoch is the alone run's.
    first = read_history(tmp_path / "together" / "round-00" / "history.csv")
    assert first[0]["loss"] != pytest.approx(together[0]["loss"], rel=1e-3)


def test_the_traced_step_is_shared_only_where_the_graph_holds_no_round_constant():
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    assert reusable(Config(**SMALL), strategy)
    assert reusable(Config(model="mlp"), strategy)
    for changes in ({"members": 2}, {"tta": True}, {"rotation": 10.0}):
        assert not reusable(Config(**{**SMALL, **changes}), strategy), changes
    assert not reusable(Config(**SMALL), strategy, levers=(object(),))  # a lever's round traces its own step


def test_restart_refuses_a_model_of_another_configuration():
    from keras_models.models.builder import build_model
    from keras_models.training.compile import compile_for

    a, b = (
        compile_for(build_model(Config(**{**SMALL, **c}).spec), Config(**SMALL)) for c in ({}, {"filters": (4, 16)})
    )
    with pytest.raises(ValueError, match="same configuration"):
        restart(a, b)
