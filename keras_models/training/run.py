"""A run: its rounds (keras_models.training.rounds) under a tf.distribute strategy, the run folder, the
summary and the export. Resumable: a run folder that holds finished rounds goes on with
the missing ones, and a round killed mid-way restarts from its last completed epoch.

Run folder:
    config.json        the Config: model spec, recipe and run settings, enough to rebuild the model
    results.json       every round's accuracies, their mean and std, the parameter count
    round-NN/history.csv   loss and accuracy per epoch, train and test (and validation)
    round-NN/timing.json   seconds trained in the round, over every invocation
    model.keras        the last round's model (safe_mode loadable; a hard link to its round's file);
                       curves.png its curves
    backup/            BackupAndRestore state of an unfinished round (gone when it ends)
    .lock              held by the process working in the folder
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from keras_models.core.errors import RunError
from keras_models.core.files import (
    atomic_link,
    atomic_save_model,
    atomic_write_json,
    check_writable,
    lock_folder,
    remove_tree,
)
from keras_models.core.machine import bfloat16_in_hardware
from keras_models.data.images import Images, load_data, require_images
from keras_models.training.config import Config, check_folder, check_resumable, default_out, save_config
from keras_models.training.levers import LEVERS
from keras_models.training.results import pct, pm, summarise
from keras_models.training.rounds import RoundData, RoundResult, RoundRunner


@dataclass
class RunFolder:
    """Where a process writes: the chief writes results into `out`; other workers keep their
    backups and models in a folder of their own, `work`."""

    out: Path
    work: Path
    chief: bool

    @property
    def results_path(self) -> Path:
        return self.out / "results.json"


def prepare(cfg: Config, images: tuple[Images, Images] | None):
    """Checks the data before anything is written, then makes the folder; returns
    (cfg with its --out, folder, images, strategy)."""
    from keras_models.training.distribute import get_strategy, is_chief, task

    chief = is_chief()
    train_images, test_images = images or load_data(cfg.data, cfg.test_data)
    for imgs in (train_images, test_images):
        require_images(len(imgs.images), cfg.pairs, imgs.source)
    if cfg.dev_pairs:
        require_images(
            len(train_images.images) - 2 * cfg.pairs, cfg.dev_pairs, f"{train_images.source} outside the pairs"
        )
    strategy = get_strategy(cfg.strategy)
    for lever in LEVERS:
        lever.check_run(cfg, (train_images, test_images), strategy)
    # Where the run will write, checked before it trains: a folder refused after a 15-minute
    # round costs the round.
    if cfg.out:
        check_writable(cfg.out, "--out")
    if cfg.export and chief:
        check_writable(cfg.export_dir, "--export-dir")
    cfg = cfg if cfg.out else cfg.replace(out=default_out(cfg))
    out = Path(cfg.out)
    folder = RunFolder(out, out if chief else out / ".workers" / "{}-{}".format(*task()), chief)
    folder.work.mkdir(parents=True, exist_ok=True)
    return cfg, folder, (train_images, test_images), strategy


def resume(cfg: Config, folder: RunFolder, images: tuple[Images, Images]) -> dict:
    """The results so far: those of a finished part of the same run, or none. config.json is
    compared before anything else in the folder is read or touched, and written first."""
    config_path = folder.out / "config.json"
    if folder.chief:
        check_folder(cfg)
    results = None
    if folder.chief and folder.results_path.is_file():
        try:
            results = json.loads(folder.results_path.read_text())
        except ValueError:
            raise RunError(f"{folder.results_path}: not valid JSON; move it away to start over") from None
        check_resumable(results, cfg, folder.out)
    if results is None:
        results = {"model": cfg.model, "params": None, "rounds": []}
    results.update(config=cfg.to_dict(), data={"train": images[0].source, "test": images[1].source})
    if folder.chief:
        save_config(cfg, config_path)
    return results


def run_rounds(cfg: Config, folder: RunFolder, images: tuple[Images, Images], strategy, results: dict, log):
    """Trains the rounds not done yet; returns the last round's model (None if none ran)."""
    done = {r["round"] for r in results["rounds"]}
    todo = [r for r in range(cfg.rounds) if r not in done]
    if done and todo:
        # Rounds count from 1 on the console, as "round 2/10" does; folders from round-00.
        log(
            f"resuming {folder.out}: round(s) {', '.join(str(r + 1) for r in sorted(done))} of {cfg.rounds} "
            "already done"
        )
    if cfg.precision == "mixed_bfloat16":
        import tensorflow as tf

        if not (bfloat16_in_hardware() or tf.config.list_physical_devices("GPU")):
            log("note: this CPU or its kernel library emulates bfloat16: --precision mixed_bfloat16 trains slower")
    if cfg.workers > 1 and len(todo) > 1:
        return run_in_workers(cfg, folder, images, todo, results, log)
    runner = RoundRunner(cfg, strategy, folder.work, len(todo))
    model, started = None, time.perf_counter()
    for i, r in enumerate(todo):
        data = RoundData.draw(cfg, images, r)
        round_dir = folder.work / f"round-{r:02d}"
        round_dir.mkdir(exist_ok=True)
        if i:
            eta = (time.perf_counter() - started) / i * (len(todo) - i)
            log(f"{cfg.model}: round {r + 1}/{cfg.rounds} (seed {data.seed}), about {eta:.0f} s left")
        else:
            log(f"{cfg.model}: round {r + 1}/{cfg.rounds} (seed {data.seed}), {cfg.num_epochs} epochs")
        model, result = runner.run(data)
        # Every worker keeps its model (in its own folder): the weights must agree across workers.
        atomic_save_model(model, round_dir / "model.keras")
        round_done(cfg, folder, results, result, int(model.count_params()), log)
    remove_empty_backups(folder)
    return model


def run_in_workers(cfg: Config, folder: RunFolder, images, todo: list[int], results: dict, log):
    """The rounds of `todo` in cfg.workers processes (keras_models.training.workers); returns the model
    of the last of them, loaded from its round folder."""
    from concurrent.futures.process import BrokenProcessPool

    from keras_models.serving.export import load_keras_model
    from keras_models.training.workers import threads_per_worker, train_in_workers

    workers = min(cfg.workers, len(todo))
    log(
        f"{cfg.model}: rounds {', '.join(str(r + 1) for r in todo)} of {cfg.rounds} in {workers} processes "
        f"of {threads_per_worker(workers)} thread(s), {cfg.num_epochs} epochs each"
    )
    try:
        for result, params in train_in_workers(cfg, folder.work, images, todo):
            round_done(cfg, folder, results, RoundResult(**result), params, log)
    except BrokenProcessPool:
        raise RunError(
            f"a worker process died (killed, or out of memory); the rounds it finished are in {folder.results_path}, "
            "and the same command resumes the others"
        ) from None
    remove_empty_backups(folder)
    return load_keras_model(folder.work / f"round-{todo[-1]:02d}" / "model.keras")


def remove_empty_backups(folder: RunFolder) -> None:
    if (folder.work / "backup").is_dir() and not any((folder.work / "backup").iterdir()):
        (folder.work / "backup").rmdir()


def round_done(cfg: Config, folder: RunFolder, results: dict, result: RoundResult, params: int, log) -> None:
    """A round's line, its entry in results.json (written at once) and its backup removed."""
    r = result.round
    results["params"] = params
    if result.ok:
        digits = f", digits {pct(result.digit_test_accuracy)}" if result.digit_test_accuracy is not None else ""
        digits += f", dev {pct(result.dev_accuracy)}" if result.dev_accuracy is not None else ""
        log(
            f"{cfg.model} round {r + 1}: train {pct(result.train_accuracy)}, "
            f"test {pct(result.test_accuracy)}{digits} ({result.seconds:.1f} s)"
        )
    else:
        log(f"{cfg.model} round {r + 1}: FAILED: {result.message}")
    results["rounds"] = sorted(results["rounds"] + [result.to_dict()], key=lambda x: x["round"])
    if folder.chief:
        atomic_write_json(folder.results_path, summarise(results))
    remove_tree(folder.work / "backup" / f"round-{r:02d}")


def report(cfg: Config, folder: RunFolder, results: dict, log) -> None:
    """The last round's model as <out>/model.keras (a second name of the round's file, not a
    copy), and the summary lines."""
    last = folder.out / f"round-{cfg.rounds - 1:02d}" / "model.keras"
    if last.is_file():
        atomic_link(last, folder.out / "model.keras")
    m, s = results["test_accuracy_mean"], results["test_accuracy_std"]
    digits = ""
    if results["digit_test_accuracy_mean"] is not None:
        digits = f", digit accuracy {pct(results['digit_test_accuracy_mean'])}"
    log(
        f"{cfg.model}: test accuracy {'n/a' if m is None else pm(m, s) + '%'} over "
        f"{results['rounds_ok']} round(s){digits}; {results['params']:,} parameters; run folder {folder.out}"
    )
    if results["rounds_failed"]:
        log(f"{cfg.model}: {results['rounds_failed']} round(s) failed and are left out of the mean")
    from keras_models.training.plots import curves, plot_curves

    drawn = plot_curves(
        folder.out / "curves.png",
        [(cfg.model, curves(folder.out))],
        f"{cfg.model}: mean ± 1 std over {results['rounds_ok']} round(s)",
    )
    if drawn:
        log(f"learning curves: {drawn}")


def export(cfg: Config, folder: RunFolder, results: dict, model, images: tuple[Images, Images], log) -> None:
    from keras_models.serving.export import export_saved_model, load_keras_model, model_card

    model = model if model is not None else load_keras_model(folder.out / "model.keras")
    card = model_card(cfg, folder.out, results, images[0].images)
    path = export_saved_model(model, cfg.export_dir, cfg.model, metadata=card)
    results["export"] = str(path)
    atomic_write_json(folder.results_path, results)
    log(f"exported SavedModel: {path}")


def run(cfg: Config, log=print, images: tuple[Images, Images] | None = None) -> dict:
    """Train `cfg.rounds` rounds; returns the results dict (also in <out>/results.json).
    `images`: the (train, test) images of cfg.data/cfg.test_data, when the caller has loaded them."""
    import tensorflow as tf

    # Each round's fresh model retraces predict; TF's warning about it is noise here.
    tf.get_logger().setLevel("ERROR")
    # Same seed, same results on the CPU (GPU kernels and multi-worker reductions may still vary).
    tf.config.experimental.enable_op_determinism()
    cfg, folder, images, strategy = prepare(cfg, images)
    held = lock_folder(folder.work)
    try:
        results = resume(cfg, folder, images)
        model = run_rounds(cfg, folder, images, strategy, results, log)
        results = summarise(results)
        if not folder.chief:
            return results
        report(cfg, folder, results, log)
        if cfg.export and results["rounds_ok"]:
            if model is None and results.get("export"):
                # Nothing new was trained: the model is the one exported already.
                log(f"already exported as {results['export']}; scripts/export.py exports it again")
            else:
                export(cfg, folder, results, model, images, log)
        return results
    finally:
        held.close()
