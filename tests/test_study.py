"""reproduce.py end to end at tiny size: two models, one round, two epochs."""

import json

import pytest
from helpers import ROOT

from experiments.cli import reproduce
from experiments.study import FIGURES, TABLE, plan


def test_table_i_is_the_registrys_report_architectures():
    from keras_models.models import architectures

    assert [e.model for e in TABLE] == [a.name for a in architectures.report_architectures()]


def test_plan_runs_each_experiment_once_and_narrows_figures():
    keys = [e.key for e in plan([e.model for e in TABLE], sorted(FIGURES))]
    assert len(keys) == len(set(keys)) == 12
    assert [e.key for e in plan(["mlp", "cc"], [4, 5])] == ["mlp", "cc", "mlp-h500", "cc-h500"]


@pytest.mark.slow
def test_a_figure_none_of_whose_models_ran_says_why_it_is_not_drawn():
    from experiments.study import FIGURES, undrawn

    (line,) = undrawn([5, 7], ["cnn"])
    shown = sorted({e.model for e in FIGURES[5][1]})
    assert line == f"figure 5 not drawn: it shows {', '.join(shown)}, none of them among --models"
    assert undrawn([7], ["cnn"]) == []


def test_reproduce_two_models_one_round_two_epochs(tmp_path):
    out = tmp_path / "results"
    # fast recipe: 50 epochs for the MLP family, x 0.04 = 2 epochs
    argv = [
        "--recipe",
        "fast",
        "--models",
        "mlp,cc_aux",
        "--figures",
        "5",
        "--rounds",
        "1",
        "--epochs-scale",
        "0.04",
        "--pairs",
        "200",
        "--out",
        str(out),
        "--quiet",
    ]
    assert reproduce.main(argv) == 0
    table = json.loads((out / "table.json").read_text())
    assert [r["model"] for r in table["rows"]] == ["mlp", "cc_aux"]
    for row in table["rows"]:
        assert row["epochs"] == 2
        assert row["rounds"] == 1
        assert 0 <= row["test_accuracy_mean"] <= 1
    md = (out / "table.md").read_text()
    assert "| mlp |" in md
    assert "| cc_aux |" in md
    assert "81.04" in md
    assert (out / "figure5.png").stat().st_size > 10_000
    # A second invocation finds every round done and only rewrites the outputs.
    before = (out / "runs" / "mlp" / "results.json").read_text()
    assert reproduce.main(argv) == 0
    assert (out / "runs" / "mlp" / "results.json").read_text() == before


def test_the_precision_reaches_every_run_and_names_the_study(tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["--recipe", "fast", "--models", "mlp", "--figures", "none", "--rounds", "1", "--epochs-scale", "0.02"]
    argv += ["--pairs", "100", "--out", str(out), "--quiet"]
    assert reproduce.main([*argv, "--precision", "mixed_bfloat16"]) == 0
    config = json.loads((out / "runs" / "mlp" / "config.json").read_text())
    assert config["spec"]["precision"] == "mixed_bfloat16"
    assert reproduce.main(argv) == 2  # float32 is another study
    assert "other settings (precision)" in capsys.readouterr().err


def test_bad_model_list_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        reproduce.main(["--models", "mlp,resnet"])
    assert exc.value.code == 2
    assert "expected a comma-separated list" in capsys.readouterr().err


def test_a_folder_holding_another_study_is_refused_and_the_same_study_resumes(tmp_path, capsys):
    from experiments.study import claim_folder

    settings = {
        "recipe": "report",
        "epochs_scale": 1.0,
        "pairs": 1000,
        "seed": 0,
        "data": "embedded",
        "test_data": None,
    }
    claim_folder(tmp_path, "table", settings)
    claim_folder(tmp_path, "table", settings)  # the same study, resumed
    claim_folder(tmp_path, "ablation", {k: v for k, v in settings.items() if k != "recipe"})  # another kind
    code = reproduce.main(["--recipe", "fast", "--epochs-scale", "0.1", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "holds a table study with other settings (epochs_scale, recipe)" in err
    assert "\n" not in err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "table.json").write_text("{}")  # finished outputs, no record of their settings
    assert reproduce.main(["--out", str(tmp_path / "other")]) == 2
    assert "no record of its settings" in capsys.readouterr().err


def test_the_committed_study_refuses_a_quick_look_and_the_default_is_a_new_folder():
    from experiments.cli.reproduce import parse_args
    from experiments.study import claim_folder
    from keras_models.core.errors import RunError

    assert parse_args(["--models", "mlp"]).out is None  # the command picks runs/study-<time>
    quick = {"recipe": "report", "epochs_scale": 0.1, "pairs": 1000, "seed": 0, "data": "embedded", "test_data": None}
    with pytest.raises(RunError, match="other settings"):
        claim_folder(ROOT / "results", "table", quick)


def test_an_interrupted_study_names_the_command_that_resumes_it(tmp_path, monkeypatch, capsys):
    import experiments.study

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(experiments.study, "run_study", interrupted)
    assert reproduce.main(["--models", "mlp", "--rounds", "1"]) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "reproduce.py: interrupted; to resume: python scripts/reproduce.py --models mlp --rounds 1 --out runs/study-"
    )
    assert (tmp_path / err.split("--out ")[1] / "reproduce.json").is_file()


def test_a_file_given_as_the_study_folder_is_named_a_file(tmp_path, capsys):
    from experiments.cli import reproduce

    (tmp_path / "README.md").write_text("# a file")
    assert reproduce.main(["--models", "mlp", "--figures", "none", "--out", str(tmp_path / "README.md")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"reproduce.py: error: {tmp_path / 'README.md'}: a file, not a folder; give --out a folder"
    )


def test_curves_of_one_epoch_are_drawn_and_an_axis_below_chance_is_kept(tmp_path):
    """One point per curve gets a marker; accuracies under 0.5 widen the axis."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from keras_models.training import plots

    drawn = []
    real_plot = matplotlib.axes.Axes.plot

    def plot(self, *args, **kwargs):
        drawn.append(kwargs.get("marker"))
        return real_plot(self, *args, **kwargs)

    ylims = []
    real_savefig = matplotlib.figure.Figure.savefig

    def savefig(fig, *args, **kwargs):
        ylims.append(fig.axes[1].get_ylim())
        return real_savefig(fig, *args, **kwargs)

    c = {k: np.array([[v]]) for k, v in (("epoch", 1), ("loss", 0.7), ("compare_accuracy", 0.31))}
    matplotlib.axes.Axes.plot, matplotlib.figure.Figure.savefig = plot, savefig
    try:
        assert plots.plot_curves(tmp_path / "one.png", [("mlp", c)], "one epoch") == tmp_path / "one.png"
    finally:
        matplotlib.axes.Axes.plot, matplotlib.figure.Figure.savefig = real_plot, real_savefig
    assert drawn == ["o", "o"]
    assert ylims[0][0] == pytest.approx(0.3)


def test_a_study_of_the_softmax_over_the_batch_needs_no_no_export():
    """A study exports none of its runs, so the setting that forbids exporting is accepted as it is."""
    from experiments.cli.reproduce import parse_args, study_base

    args = parse_args(["--models", "cnn_cc,cnn_aux", "--classifier-softmax", "batch", "--figures", "none"])
    base = study_base(args)
    assert base.spec.classifier_softmax == "batch"
    assert base.run.export is False
