"""Learning curves: train and (unless a run left it out) test compare loss and accuracy per epoch, as a mean over rounds
with a one-standard-deviation band. Every train.py run draws its curves.png with it, and the
study draws its Figures 4-7 with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_models.training.callbacks import read_history


def curves(run_dir: Path) -> dict[str, np.ndarray]:
    """Per-epoch columns of every finished round's history.csv, stacked (rounds, epochs)."""
    histories = [read_history(p) for p in sorted(Path(run_dir).glob("round-*/history.csv"))]
    histories = [h for h in histories if h]
    if not histories:
        return {}
    n = min(len(h) for h in histories)
    return {k: np.array([[row[k] for row in h[:n]] for h in histories]) for k in histories[0][0]}


def plot_curves(path: Path, series: list[tuple[str, dict]], title: str) -> Path | None:
    """One line pair (train dashed, test solid) per (label, curves) of `series`; None if none
    has curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [(label, c) for label, c in series if c]
    if not series:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    lowest = 0.5  # chance for compare; a curve below it widens the axis instead of leaving it
    for i, (label, c) in enumerate(series):
        epochs, color = c["epoch"][0], f"C{i}"
        # The compare loss, not the total: the aux models' total adds digit losses.
        loss = "compare_loss" if "compare_loss" in c else "loss"
        for ax, (train_key, test_key) in zip(
            axes, [(loss, f"test_{loss}"), ("compare_accuracy", "test_compare_accuracy")], strict=False
        ):
            for key, style, split in ((train_key, "--", "train"), (test_key, "-", "test")):
                if key not in c:  # a run without the test curve (--no-test-curve)
                    continue
                mean, std = c[key].mean(0), c[key].std(0)
                # A run of one epoch is one point, which a line alone would not draw.
                marker = "o" if len(epochs) == 1 else None
                ax.plot(epochs, mean, style, marker=marker, color=color, label=f"{label} {split}")
                if key.endswith("accuracy"):
                    lowest = min(lowest, float((mean - std).min()))
                ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.15)
    axes[0].set(xlabel="epoch", ylabel="binary cross-entropy of compare")
    axes[1].set(xlabel="epoch", ylabel="accuracy of compare", ylim=(max(0.0, np.floor(lowest * 10) / 10), 1.0))
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
