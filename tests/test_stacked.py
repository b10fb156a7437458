"""Rounds trained together (keras_models/training/stacked.py): a stack of rounds computes what
the rounds compute alone, and each round's files and export are a lone round's."""

import json

import pytest

from keras_models.core.errors import ConfigError
from keras_models.training.callbacks import read_history
from keras_models.training.config import Config

SMALL = dict(hidden=(32,), comparer=(8,), pairs=200, epochs=4, rounds=3, lr=1e-3, quiet=True)


def test_a_stack_refuses_what_a_plain_round_model_cannot_hold():
    assert Config(model="cc_aux", stack=3).run.stack == 3
    for bad in ({"members": 2}, {"tta": True}, {"workers": 2}, {"validation_split": 0.1}):
        with pytest.raises(ConfigError, match="--stack trains one plain model per round"):
            Config(model="cc_aux", stack=3, **bad)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cc_aux", "mlp", "cnn"])
def test_three_rounds_stacked_give_what_three_rounds_alone_give(tmp_path, embedded, model):
    from helpers import run_script

    from keras_models.training.run import run

    alone = run(Config(model=model, **SMALL, out=str(tmp_path / "alone"), export=False), images=embedded)
    lines = []
    stacked = run(
        Config(model=model, **SMALL, stack=3, out=str(tmp_path / "stacked"), export_dir=str(tmp_path / "exports")),
        log=lines.append,
        images=embedded,
    )
    assert any("rounds 1, 2, 3 as one model" in x for x in lines)
    assert stacked["rounds_ok"] == 3
    assert stacked["params"] == alone["params"]  # each round's model is the plain one
    for a, b in zip(alone["rounds"], stacked["rounds"], strict=True):
        # The same seeds give the same initial weights, batches and dropout generators; only the
        # order in which a larger graph sums floats differs, which moves a pair or two of 200.
        assert b["test_accuracy"] == pytest.approx(a["test_accuracy"], abs=0.011)
        ha = read_history(tmp_path / "alone" / f"round-{a['round']:02d}" / "history.csv")
        hb = read_history(tmp_path / "stacked" / f"round-{b['round']:02d}" / "history.csv")
        assert list(hb[0]) == list(ha[0])  # a lone round's columns
        assert [r["epoch"] for r in hb] == [1, 2, 3, 4]
        assert hb[0]["test_loss"] == pytest.approx(ha[0]["test_loss"], rel=1e-3)
        assert json.loads((tmp_path / "stacked" / f"round-{b['round']:02d}" / "timing.json").read_text())["epochs"] == 4
    # The export is the last round's plain model, served as any: predict.py in a fresh process.
    import numpy as np

    np.save(tmp_path / "pair.npy", embedded[1].images[[1750, 750]][None].astype(np.float32))
    done = run_script("predict.py", stacked["export"], str(tmp_path / "pair.npy"))
    assert done.returncode == 0, done.stderr
    assert "compare" in json.loads(done.stdout.splitlines()[0])
