"""Figures 4-7 beside the report's points (experiments/figure_points.py): the mean test accuracy
over rounds at the epoch the report reads, from the rounds' history.csv."""

import pytest

from experiments.figure_points import REPORT_POINTS, figure_points, points_markdown
from experiments.study import FIGURES
from keras_models.training.callbacks import write_history


def rounds_of(folder, accuracies_by_round):
    for r, accuracies in enumerate(accuracies_by_round):
        rows = [{"epoch": e + 1, "compare_accuracy": a, "test_compare_accuracy": a} for e, a in enumerate(accuracies)]
        (folder / f"round-{r:02d}").mkdir(parents=True)
        write_history(folder / f"round-{r:02d}" / "history.csv", rows)


def test_each_curve_is_read_at_the_reports_epoch_or_its_last(tmp_path):
    epochs = 250
    mlp, cc = FIGURES[4][1][0], FIGURES[4][1][1]
    rounds_of(tmp_path / "runs" / mlp.key, [[0.5] * 199 + [0.80] + [0.9] * 50, [0.5] * 199 + [0.84] + [0.9] * 50])
    rounds_of(tmp_path / "runs" / cc.key, [[0.7] * epochs])
    rows = figure_points(tmp_path, {4: [mlp, cc, FIGURES[4][1][2]]})  # the third has no run: left out
    assert [r["run"] for r in rows] == [mlp.key, cc.key]
    assert rows[0]["epoch"] == REPORT_POINTS[4][0] == 200
    assert rows[0]["test_accuracy_mean"] == pytest.approx(0.82)
    assert rows[0]["test_accuracy_std"] == pytest.approx(0.02 * 2**0.5)  # sample std of 0.80, 0.84
    assert rows[0]["report"] == 0.81
    table = points_markdown(rows)
    assert f"| 4 | {mlp.key} | 200 | 2 | 82.00 ± 2.83 | 81 | +1.0 |" in table
    assert f"| 4 | {cc.key} | 200 | 1 | 70.00 ± 0.00 | 82 | -12.0 |" in table


def test_a_run_shorter_than_the_epoch_read_is_left_out_and_the_last_epoch_is_read_where_none_is_named(tmp_path):
    mlp = FIGURES[5][1][0]
    rounds_of(tmp_path / "runs" / mlp.key, [[0.6, 0.7, 0.75]])
    assert figure_points(tmp_path, {4: [mlp]}) == []  # read at 200 epochs; the run has 3
    (row,) = figure_points(tmp_path, {5: [mlp]})
    assert row["epoch"] == 3
    assert row["test_accuracy_mean"] == pytest.approx(0.75)
