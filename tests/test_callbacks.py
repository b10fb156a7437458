"""Callbacks: interrupts held back while a backup is written."""

import os
import signal

import pytest

from keras_models.training.callbacks import deferred_interrupts


class Stop(Exception):
    pass


def test_a_signal_inside_the_block_takes_effect_when_it_ends():
    def stop(signum, frame):
        raise Stop()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        steps = []

        def write():
            with deferred_interrupts():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("finished the write")

        with pytest.raises(Stop):
            write()
        assert steps == ["finished the write"]
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_without_the_test_curve_the_history_keeps_training_columns_and_still_plots(tmp_path):
    import numpy as np

    from keras_models.models.builder import build_model
    from keras_models.training.callbacks import EpochRecorder, read_history
    from keras_models.training.compile import compile_for
    from keras_models.training.config import Config
    from keras_models.training.plots import curves, plot_curves

    cfg = Config(model="cnn_aux", filters=(4,), hidden=(8,))
    model = compile_for(build_model(cfg.spec), cfg)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 2, 14, 14)).astype(np.float32)
    digits = rng.integers(0, 10, (8, 2))
    y = {
        "compare": (digits[:, 0] <= digits[:, 1]).astype(np.float32)[:, None],
        "digit1": digits[:, 0],
        "digit2": digits[:, 1],
    }
    (tmp_path / "round-00").mkdir()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[EpochRecorder(tmp_path / "round-00" / "history.csv")])
    rows = read_history(tmp_path / "round-00" / "history.csv")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert "compare_accuracy" in rows[0]
    assert not any(k.startswith("test_") for k in rows[0])
    assert plot_curves(tmp_path / "curves.png", [("run", curves(tmp_path))], "t").stat().st_size > 0
