"""Training over rounds: draw pairs, build and fit under a tf.distribute strategy, evaluate,
write the run folder, export. Resumable: a run folder that holds finished rounds goes on with
the missing ones, and a round killed mid-way restarts from its last completed epoch.

Run folder:
    config.json        the Config, enough to rebuild the model
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
import math
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from .callbacks import EpochLog, EpochRecorder, IntervalBackupAndRestore, Stopwatch
from .config import MEMBER_SEED_STRIDE, NO_TTA, TTA_VIEWS, Config, check_folder, check_resumable, default_out, save_config
from .data import Images, Pairs, concat, dev_pairs, draw_round, load_data, require_images, swapped, unused_images
from .errors import ConfigError, RunError
from .files import atomic_link, atomic_save_model, atomic_write_json, check_writable, lock_folder, remove_tree
from .machine import describe as describe_machine
from .pipeline import as_dataset, pixel_stats, split_validation
from .results import evaluate_pairs, pct, pm, summarise

def pretrain_classifier(model: keras.Model, cfg: Config, images: Images) -> None:
    """Fits the model's shared classifier (through its normalisation and augmentation layers,
    so on the inputs it will see) on single labelled digits. The pair model shares these
    layers, so it starts from the result."""
    from .models import digit_loss

    digit = keras.Input(shape=(14, 14, 1), name="single_digit")  # "digit" is the classifier's input
    x = model.get_layer("normalize")(digit)
    for layer in model.layers:  # in the pair model's order
        if layer.name.startswith("augment_"):
            x = layer(x)
    probs = keras.layers.Softmax(name="digit_probabilities")(model.get_layer("classifier")(x))
    single = keras.Model(digit, probs, name="pretrain")
    single.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=digit_loss(cfg, "digit_loss"), metrics=["accuracy"])
    # Two digits per pair: the same number of images per step as the pair model sees.
    single.fit(images.images[..., None], images.labels, batch_size=2 * cfg.batch_size, epochs=cfg.pretrain_epochs,
               shuffle=True, verbose=0 if cfg.quiet else 2)


def train_round(cfg: Config, pairs: Pairs, test: Pairs, round_dir: Path, backup_dir: Path,
                strategy, seed: int, unused: Images | None = None, rounds_after: int = 0, dev: Pairs | None = None):
    """One round on the pairs of `seed`: `cfg.teachers` teachers, then `cfg.members` fresh
    models fitted on `pairs` (learning from the teachers too, if any); returns (model,
    result). With several members (or `cfg.tta`) the model is their ensemble_model. Teachers
    (in round_dir/teacher-T) and several members (round_dir/member-M) each keep their history
    and model, so that a killed round resumes at its first unfinished one. `unused`: the
    training images outside the pairs, for `cfg.pretrain_epochs`."""
    from .models import ensemble_model

    train, val = split_validation(pairs, cfg.validation_split)
    if cfg.swap:
        train = concat(train, swapped(train))
    member_ids = range(cfg.member, cfg.member + cfg.members)
    alone = cfg.members == 1
    fits = cfg.members + cfg.teachers
    fits_after = rounds_after * fits + fits - 1

    def fit(part_cfg, part_dir, backup, part_seed, keep, teachers=None):
        nonlocal fits_after
        part = fit_part(part_cfg, train, val, test, part_dir, backup, strategy, part_seed, unused, fits_after,
                        keep, teachers)
        fits_after -= 1
        return part

    teachers, teacher_parts = [], []
    for k in range(cfg.teachers):
        # Seeds after the members': a teacher never shares its initial weights with a student.
        teacher_seed = seed + MEMBER_SEED_STRIDE * (cfg.member + cfg.members + k)
        model, part = fit(cfg.replace(teachers=0), round_dir / f"teacher-{k}", backup_dir / f"teacher-{k}", teacher_seed,
                          keep=True)
        if part["status"] != "ok":
            return model, {**part, "seed": seed, "message": f"teacher {k}: {part['message']}"}
        if dev is not None:
            part = {**part, "dev_accuracy": evaluate_pairs(model, dev)["accuracy"]}
        teachers.append(model)
        teacher_parts.append(part)
    fitted, parts = [], []
    for m in member_ids:
        model, part = fit(cfg, round_dir if alone else round_dir / f"member-{m}",
                          backup_dir if alone else backup_dir / f"member-{m}", seed + MEMBER_SEED_STRIDE * m,
                          keep=not alone, teachers=teachers)
        if part["status"] != "ok":
            return model, {**part, "seed": seed, "message": part["message"] if alone else f"member {m}: {part['message']}"}
        fitted.append(model)
        parts.append(part)
    # The teachers' training counts in the round's seconds: the model could not exist without it.
    every = parts + teacher_parts
    result = {"seed": seed, "status": "ok", "seconds": round(sum(p["seconds"] for p in every), 2),
              "epochs_run": parts[-1]["epochs_run"],
              "seconds_total": round(sum(p.get("seconds_total", p["seconds"]) for p in every), 2),
              "epochs_total": parts[-1].get("epochs_total", parts[-1]["epochs_run"]),
              "machine": describe_machine()}
    if teacher_parts:
        result["teachers"] = [{"teacher": k, **p} for k, p in enumerate(teacher_parts)]
    model = fitted[0]
    if cfg.members > 1 or cfg.tta:
        model = ensemble_model(fitted, TTA_VIEWS if cfg.tta else NO_TTA, name=cfg.model)
        result["members"] = [{"member": m, **p} for m, p in zip(member_ids, parts)]
    tr, te = evaluate_pairs(model, train), evaluate_pairs(model, test)
    result.update(train_accuracy=tr["accuracy"], test_accuracy=te["accuracy"],
                  digit_test_accuracy=te.get("digit_accuracy"))
    if val is not None:
        result["validation_accuracy"] = evaluate_pairs(model, val)["accuracy"]
    if dev is not None:
        result["dev_accuracy"] = evaluate_pairs(model, dev)["accuracy"]
    return model, result


def fit_part(cfg: Config, train: Pairs, val: Pairs | None, test: Pairs, part_dir: Path, backup_dir: Path, strategy,
             seed: int, unused: Images | None, fits_after: int, keep: bool, teachers: list | None = None):
    """fit_member into `part_dir`; with `keep`, a part that finished before is loaded instead,
    and a part that finishes now is saved there (model.keras, result.json)."""
    from .export import load_keras_model

    if keep and (part_dir / "result.json").is_file() and (part_dir / "model.keras").is_file():
        return load_keras_model(part_dir / "model.keras"), json.loads((part_dir / "result.json").read_text())
    part_dir.mkdir(parents=True, exist_ok=True)
    model, part = fit_member(cfg, train, val, test, part_dir, backup_dir, strategy, seed, unused, fits_after, teachers)
    if keep and part["status"] == "ok":
        atomic_save_model(model, part_dir / "model.keras")
        atomic_write_json(part_dir / "result.json", part)
    return model, part


def fit_member(cfg: Config, train: Pairs, val: Pairs | None, test: Pairs, history_dir: Path, backup_dir: Path,
               strategy, seed: int, unused: Images | None, fits_after: int = 0, teachers: list | None = None):
    """A fresh model, its weights, augmentation and batch order drawn from `seed`, fitted on
    `train` (and on the digit distributions of `teachers`, if any); returns (model, result)
    with the status, seconds and epochs run."""
    from .models import build_model, compile_model, student_of, targets_for

    keras.utils.set_random_seed(seed)
    replicated = strategy.num_replicas_in_sync > 1 or cfg.strategy == "multiworker"
    with strategy.scope():
        model = build_model(cfg, *pixel_stats(train), sync_bn=replicated, teachers=teachers)
        compile_model(model, cfg, steps_per_epoch=math.ceil(len(train) / cfg.batch_size), replicated=replicated)
    recorder = EpochRecorder(history_dir / "history.csv",
                             as_dataset(test, targets_for(model, test), 1000) if cfg.test_curve else None)
    stopwatch = Stopwatch(history_dir / "timing.json", cfg.backup_interval)
    callbacks = [
        recorder,
        stopwatch,
        keras.callbacks.TerminateOnNaN(),
        IntervalBackupAndRestore(str(backup_dir), cfg.backup_interval),
    ]
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(history_dir / "tensorboard")))
    if not cfg.quiet:
        callbacks.append(EpochLog(fits_after))
    start = time.perf_counter()
    if cfg.pretrain_epochs:
        with strategy.scope():
            pretrain_classifier(model, cfg, unused)
    history = model.fit(
        as_dataset(train, targets_for(model, train), cfg.batch_size, shuffle_seed=seed, repair=cfg.repair),
        epochs=cfg.num_epochs,
        validation_data=as_dataset(val, targets_for(model, val), 1000) if val is not None else None,
        callbacks=callbacks, verbose=0, shuffle=False,  # EpochLog prints; the dataset reshuffles itself
    )
    losses = history.history.get("loss", [])
    seconds = time.perf_counter() - start
    # "seconds" and "epochs_run": this invocation's part; the totals include the parts before a resume.
    result = {"status": "ok", "seconds": round(seconds, 2), "epochs_run": len(losses),
              "seconds_total": round(stopwatch.earlier + seconds, 2), "epochs_total": len(recorder.rows)}
    if any(not math.isfinite(v) for v in losses):
        result.update(status="failed", message=f"loss became NaN/inf at epoch {len(losses)}; round stopped")
    if teachers:
        model = student_of(model, cfg, *pixel_stats(train))
    return model, result


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
    from .distribute import get_strategy, is_chief, task

    chief = is_chief()
    train_images, test_images = images or load_data(cfg.data, cfg.test_data)
    for imgs in (train_images, test_images):
        require_images(len(imgs.images), cfg.pairs, imgs.source)
    if cfg.dev_pairs:
        require_images(len(train_images.images) - 2 * cfg.pairs, cfg.dev_pairs, f"{train_images.source} outside the pairs")
    if cfg.pretrain_epochs and len(train_images.images) == 2 * cfg.pairs:
        raise ConfigError(f"{train_images.source}: no training images outside the {cfg.pairs} pairs to pre-train on")
    strategy = get_strategy(cfg.strategy)
    if cfg.teachers and strategy.num_replicas_in_sync > 1:  # `auto` over several GPUs
        raise ConfigError("--teachers trains its teachers and the model on one device; use --strategy default")
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
        log(f"resuming {folder.out}: round(s) {', '.join(str(r + 1) for r in sorted(done))} of {cfg.rounds} already done")
    model, started = None, time.perf_counter()
    for i, r in enumerate(todo):
        seed = cfg.seed + r
        pairs, test = draw_round(*images, cfg.pairs, seed)
        round_dir = folder.work / f"round-{r:02d}"
        round_dir.mkdir(exist_ok=True)
        if i:
            eta = (time.perf_counter() - started) / i * (len(todo) - i)
            log(f"{cfg.model}: round {r + 1}/{cfg.rounds} (seed {seed}), about {eta:.0f} s left")
        else:
            log(f"{cfg.model}: round {r + 1}/{cfg.rounds} (seed {seed}), {cfg.num_epochs} epochs")
        unused = unused_images(images[0], cfg.pairs, seed) if cfg.pretrain_epochs else None
        dev = dev_pairs(images[0], cfg.pairs, cfg.dev_pairs, seed) if cfg.dev_pairs else None
        model, result = train_round(cfg, pairs, test, round_dir, folder.work / "backup" / f"round-{r:02d}",
                                    strategy, seed, unused, rounds_after=len(todo) - i - 1, dev=dev)
        result["round"] = r
        results["params"] = int(model.count_params())
        if result["status"] == "ok":
            digits = f", digits {pct(result['digit_test_accuracy'])}" if result["digit_test_accuracy"] is not None else ""
            digits += f", dev {pct(result['dev_accuracy'])}" if "dev_accuracy" in result else ""
            log(f"{cfg.model} round {r + 1}: train {pct(result['train_accuracy'])}, "
                f"test {pct(result['test_accuracy'])}{digits} ({result['seconds']:.1f} s)")
        else:
            log(f"{cfg.model} round {r + 1}: FAILED: {result['message']}")
        # Every worker keeps its model (in its own folder): the weights must agree across workers.
        atomic_save_model(model, round_dir / "model.keras")
        results["rounds"] = sorted(results["rounds"] + [result], key=lambda x: x["round"])
        if folder.chief:
            atomic_write_json(folder.results_path, summarise(results))
        remove_tree(folder.work / "backup" / f"round-{r:02d}")
    if (folder.work / "backup").is_dir() and not any((folder.work / "backup").iterdir()):
        (folder.work / "backup").rmdir()
    return model


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
    log(f"{cfg.model}: test accuracy {'n/a' if m is None else pm(m, s) + '%'} over "
        f"{results['rounds_ok']} round(s){digits}; {results['params']:,} parameters; run folder {folder.out}")
    if results["rounds_failed"]:
        log(f"{cfg.model}: {results['rounds_failed']} round(s) failed and are left out of the mean")
    from .plots import curves, plot_curves

    drawn = plot_curves(folder.out / "curves.png", [(cfg.model, curves(folder.out))],
                        f"{cfg.model}: mean ± 1 std over {results['rounds_ok']} round(s)")
    if drawn:
        log(f"learning curves: {drawn}")


def export(cfg: Config, folder: RunFolder, results: dict, model, images: tuple[Images, Images], log) -> None:
    from .export import export_saved_model, load_keras_model, model_card

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
