"""The rows of an ablation: a declared set of changes to a base recipe, its Config, and the
runs of a list of rows one after another. Each row is an ordinary `training.run` in its own run
folder, so a stopped ablation resumes where it was."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keras_models.training.config import Config


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    changes: dict
    outside_images: bool = False  # learns from training images beyond the round's pairs
    levers: tuple = ()  # what the row adds beyond settings (experiments/levers.py)


def row_config(base: Config, fixed: dict, row: Row, folder: Path, epochs_scale: float = 1.0) -> Config:
    """A row's run: the base, then the settings every row of its ablation shares, then its own."""
    cfg = base.replace(**{"hidden": None, **fixed, **row.changes}, export=False, out=str(folder))
    return cfg.replace(epochs=max(1, round(cfg.recipe.epochs * epochs_scale)))


def train_rows(base: Config, out: Path, declared: list[Row], keys: list[str] | None, configure, title: str, log=print):
    """Runs the rows of `declared` named in `keys` (None: all), each as `configure(row)`, one
    after another on the same loaded images, which it returns."""
    from keras_models.data.images import load_data
    from keras_models.training.run import run

    out.mkdir(parents=True, exist_ok=True)
    images = load_data(base.recipe.data, base.recipe.test_data)
    todo = [r for r in declared if keys is None or r.key in keys]
    for i, row in enumerate(todo):
        log(f"== {title} {i + 1}/{len(todo)}: {row.key} ({row.label})")
        run(configure(row), log=log, images=images, levers=row.levers)
    return images
