"""`import keras_models`: the documented surface, the README's Python example run as written,
and a run's model.keras loaded as the README says."""

import re

import pytest
from helpers import ROOT, run_python

import keras_models


def test_the_surface_is_small_documented_and_lazy():
    for name in keras_models.__all__:
        obj = getattr(keras_models, name)
        assert ">>>" in (obj.__doc__ or ""), f"{name} needs a docstring with an example"
    proc = run_python(["-c", "import sys, keras_models; print('tensorflow' in sys.modules)"])
    assert proc.stdout.strip() == "False"  # nothing loads until a name is used
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = keras_models.nothing


def readme_python_block() -> str:
    section = ROOT.joinpath("README.md").read_text().split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readmes_python_example_runs_as_written_and_again(tmp_path):
    """Right after the set-up command, from the project's folder: it trains, exports, and
    answers five test pairs; run again, it finds its finished run and its export."""
    code = readme_python_block()
    for _ in range(2):
        proc = run_python(["-c", code], cwd=tmp_path, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        lines = proc.stdout.strip().splitlines()
        assert re.match(r"test accuracy 0\.\d{3}, exported to saved_models/cnn_aux/1$", lines[-6]), lines[-6:]
        assert all(re.fullmatch(r"\d \d (True|False) target: (True|False)", line) for line in lines[-5:])
    assert sorted(p.name for p in (tmp_path / "saved_models" / "cnn_aux").iterdir()) == ["1"]


@pytest.mark.slow
def test_a_runs_model_keras_loads_as_the_readme_says(tmp_path):
    from keras_models.training.config import Config
    from keras_models.training.run import run

    cfg = Config(model="cnn_aux", filters=(4,), hidden=(8,), epochs=1, pairs=100, quiet=True)
    run(cfg.replace(out=str(tmp_path / "run"), export=False), log=lambda *_: None)
    path = tmp_path / "run" / "model.keras"
    load = "import keras; {} m = keras.saving.load_model({!r}); print(m.name)"
    bare = run_python(["-c", load.format("", str(path))])
    # Without the project's layers registered, Keras cannot find the first of them.
    assert bare.returncode != 0
    assert "Could not locate class 'PixelNormalization'" in bare.stderr, bare.stderr[-2000:]
    registered = run_python(["-c", load.format("import keras_models.models.layers;", str(path))])
    assert registered.returncode == 0, registered.stderr[-2000:]
    assert registered.stdout.strip().endswith("cnn_aux")
    ours = run_python(["-c", f"import keras_models as km; print(km.load_keras_model({str(path)!r}).name)"])
    assert ours.returncode == 0
    assert ours.stdout.strip().endswith("cnn_aux")
