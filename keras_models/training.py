"""Training over rounds: draw pairs, build and fit under a tf.distribute strategy, evaluate,
write the run folder, export. Resumable: a run folder that holds finished rounds goes on with
the missing ones, and a round killed mid-way restarts from its last completed epoch.

Run folder:
    config.json        the Config, enough to rebuild the model
    results.json       every round's accuracies, their mean and std, the parameter count
    round-NN/history.csv   loss and accuracy per epoch, train and test (and validation)
    model.keras        the last round's model (safe_mode loadable)
    backup/            BackupAndRestore state of an unfinished round (gone when it ends)
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

import keras
import numpy as np

from .config import MEMBER_SEED_STRIDE, NO_TTA, TTA_VIEWS, Config, save_config
from .data import Images, Pairs, concat, draw_round, load_data, require_images, swapped, unused_images
from .errors import ConfigError, RunError
from .files import atomic_save_model, atomic_write_json, atomic_write_text, remove_tree

# Settings that may change between a run and its resumption without changing what it computes.
RESUMABLE_FIELDS = {"rounds", "quiet", "tensorboard", "export", "export_dir", "out", "extra", "strategy",
                    "backup_interval", "steps_per_execution"}


def default_out(cfg: Config) -> str:
    return str(Path("runs") / f"{cfg.model}-{datetime.now():%Y%m%d-%H%M%S}")


def split_validation(pairs: Pairs, fraction: float) -> tuple[Pairs, Pairs | None]:
    """The last `fraction` of the (already random) training pairs, held out for validation."""
    if fraction <= 0:
        return pairs, None
    n_val = max(1, int(round(len(pairs) * fraction)))
    if n_val >= len(pairs):
        raise ConfigError(f"validation split {fraction} leaves no training pairs")
    idx = np.arange(len(pairs))
    return pairs.take(idx[:-n_val]), pairs.take(idx[-n_val:])


def as_dataset(pairs: Pairs, targets: dict, batch_size: int, shuffle_seed: int | None = None,
               repair: bool = False):
    """Pairs as a cached tf.data pipeline, reshuffled every epoch from `shuffle_seed`.
    Per epoch this is ~40% faster than handing fit numpy arrays (whose adapter is rebuilt), and
    a repeated evaluate on numpy arrays costs ten times what it costs on a cached dataset.
    `repair` (with a shuffle seed): every batch's digits are dealt into new pairs, with the
    `targets` (only their keys are used then) recomputed from the digits' classes."""
    import tensorflow as tf

    if repair:
        ds = tf.data.Dataset.from_tensor_slices((pairs.x, pairs.classes)).cache()
    else:
        ds = tf.data.Dataset.from_tensor_slices((pairs.x, targets)).cache()
    if shuffle_seed is not None:
        ds = ds.shuffle(len(pairs), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if repair:
        if shuffle_seed is None:
            raise ValueError("re-pairing draws from the shuffle seed; pass one")
        # One stateless seed per batch, new every epoch, so a run stays reproducible.
        seeds = tf.data.Dataset.random(seed=shuffle_seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda batch, seed: repaired(*batch, seed, tuple(targets)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def repaired(x, classes, seed, keys: tuple):
    """A batch (x (N, 2, H, W), classes (N, 2)) with its 2N digits permuted into N new pairs."""
    import tensorflow as tf

    shape = tf.shape(x)
    digits = tf.reshape(x, tf.concat([[2 * shape[0]], shape[2:]], 0))
    order = tf.random.experimental.stateless_shuffle(tf.range(2 * shape[0]), seed)
    x = tf.reshape(tf.gather(digits, order), shape)
    classes = tf.reshape(tf.gather(tf.reshape(classes, [-1]), order), [-1, 2])
    targets = {"compare": tf.cast(classes[:, 0] <= classes[:, 1], tf.float32),
               "digit1": classes[:, 0], "digit2": classes[:, 1]}
    return x, {k: targets[k] for k in keys}


def pixel_stats(pairs: Pairs) -> tuple[float, float]:
    return float(pairs.x.mean()), float(pairs.x.var())


class EpochRecorder(keras.callbacks.Callback):
    """Evaluates the test pairs after every epoch (inference mode; nothing is chosen by it) and
    rewrites history.csv keyed by epoch, so that an epoch replayed after a resume replaces its
    row instead of repeating it. It must run before BackupAndRestore: a row is on disk before
    the backup that marks its epoch done."""

    def __init__(self, path: Path, test_data):
        super().__init__()
        self.path, self.test_data = path, test_data
        self.rows = read_history(path)

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        test = self.model.evaluate(self.test_data, verbose=0, return_dict=True)
        row.update({f"test_{k}": float(v) for k, v in test.items()})
        self.rows = [r for r in self.rows if int(r["epoch"]) < row["epoch"]] + [row]
        write_history(self.path, self.rows)


class IntervalBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore at epoch granularity, but at most every `interval` seconds (and after
    the last epoch): writing the weights and optimizer state costs ~0.1 s, about as much as a
    whole epoch of the MLP family. A kill then replays at most `interval` seconds of epochs,
    whose history rows EpochRecorder overwrites."""

    def __init__(self, backup_dir: str, interval: float):
        super().__init__(backup_dir, save_freq="epoch", double_checkpoint=True)
        self.interval = interval
        self._last_save = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 == self.params.get("epochs")
        if self.interval <= 0 or last or time.monotonic() - self._last_save >= self.interval:
            super().on_epoch_end(epoch, logs)
            self._last_save = time.monotonic()
        else:
            self._current_epoch = epoch + 1


def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) if k != "epoch" else int(v) for k, v in r.items()} for r in csv.DictReader(f)]


def write_history(path: Path, rows: list[dict]) -> None:
    columns = ["epoch"] + sorted({k for r in rows for k in r} - {"epoch"})
    lines = [",".join(columns)] + [",".join(str(r.get(c, "")) for c in columns) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def evaluate_pairs(model, pairs: Pairs) -> dict:
    """Accuracy of compare, and the mean digit accuracy for models with digit outputs."""
    return score_outputs(model.predict(pairs.x, batch_size=1000, verbose=0), pairs)


def score_outputs(out: dict, pairs: Pairs) -> dict:
    """The accuracies of evaluate_pairs, from a model's (or an ensemble's) output dict."""
    result = {"accuracy": float(np.mean((np.asarray(out["compare"])[:, 0] > 0.5) == (pairs.target > 0.5)))}
    if "digit1" in out:
        hits = [np.argmax(out[f"digit{i + 1}"], axis=1) == pairs.classes[:, i] for i in (0, 1)]
        result["digit_accuracy"] = float(np.mean(hits))
    return result


def pretrain_classifier(model: keras.Model, cfg: Config, images: Images, verbose: int) -> None:
    """Fits the model's shared classifier (through its normalisation and augmentation layers,
    so on the inputs it will see) on single labelled digits. The pair model shares these
    layers, so it starts from the result."""
    from .models import digit_loss

    digit = keras.Input(shape=(14, 14, 1), name="single_digit")  # "digit" is the classifier's input
    x = model.get_layer("normalize")(digit)
    if cfg.augment:
        for name in ("augment_shift", "augment_rotate"):
            x = model.get_layer(name)(x)
    probs = keras.layers.Softmax(name="digit_probabilities")(model.get_layer("classifier")(x))
    single = keras.Model(digit, probs, name="pretrain")
    single.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=digit_loss(cfg, "digit_loss"), metrics=["accuracy"])
    # Two digits per pair: the same number of images per step as the pair model sees.
    single.fit(images.images[..., None], images.labels, batch_size=2 * cfg.batch_size, epochs=cfg.pretrain_epochs,
               shuffle=True, verbose=verbose)


def train_round(cfg: Config, pairs: Pairs, test: Pairs, round_dir: Path, backup_dir: Path,
                strategy, seed: int, unused: Images | None = None):
    """One round on the pairs of `seed`: `cfg.members` fresh models fitted on `pairs`; returns
    (model, result). With several members (or `cfg.tta`) the model is their ensemble_model, and
    each member keeps its history and model in round_dir/member-M, so that a killed round
    resumes at its first unfinished member. `unused`: the training images outside the pairs,
    for `cfg.pretrain_epochs`."""
    from .export import load_keras_model
    from .models import ensemble_model

    train, val = split_validation(pairs, cfg.validation_split)
    if cfg.swap:
        train = concat(train, swapped(train))
    member_ids = range(cfg.member, cfg.member + cfg.members)
    alone = cfg.members == 1
    fitted, parts = [], []
    for m in member_ids:
        member_dir = round_dir if alone else round_dir / f"member-{m}"
        if not alone and (member_dir / "result.json").is_file() and (member_dir / "model.keras").is_file():
            fitted.append(load_keras_model(member_dir / "model.keras"))
            parts.append(json.loads((member_dir / "result.json").read_text()))
            continue
        member_dir.mkdir(parents=True, exist_ok=True)
        model, part = fit_member(cfg, train, val, test, member_dir, backup_dir if alone else backup_dir / f"member-{m}",
                                 strategy, seed + MEMBER_SEED_STRIDE * m, unused)
        if part["status"] != "ok":
            return model, {**part, "seed": seed, "message": part["message"] if alone else f"member {m}: {part['message']}"}
        if not alone:
            atomic_save_model(model, member_dir / "model.keras")
            atomic_write_json(member_dir / "result.json", part)
        fitted.append(model)
        parts.append(part)
    result = {"seed": seed, "status": "ok", "seconds": round(sum(p["seconds"] for p in parts), 2),
              "epochs_run": parts[-1]["epochs_run"]}
    model = fitted[0]
    if cfg.members > 1 or cfg.tta:
        model = ensemble_model(fitted, TTA_VIEWS if cfg.tta else NO_TTA, name=cfg.model)
        result["members"] = [{"member": m, **p} for m, p in zip(member_ids, parts)]
    tr, te = evaluate_pairs(model, train), evaluate_pairs(model, test)
    result.update(train_accuracy=tr["accuracy"], test_accuracy=te["accuracy"],
                  digit_test_accuracy=te.get("digit_accuracy"))
    if val is not None:
        result["validation_accuracy"] = evaluate_pairs(model, val)["accuracy"]
    return model, result


def fit_member(cfg: Config, train: Pairs, val: Pairs | None, test: Pairs, history_dir: Path, backup_dir: Path,
               strategy, seed: int, unused: Images | None):
    """A fresh model, its weights, augmentation and batch order drawn from `seed`, fitted on
    `train`; returns (model, result) with the status, seconds and epochs run."""
    from .models import build_model, compile_model, targets_for

    keras.utils.set_random_seed(seed)
    replicated = strategy.num_replicas_in_sync > 1 or cfg.strategy == "multiworker"
    with strategy.scope():
        model = build_model(cfg, *pixel_stats(train), sync_bn=replicated)
        compile_model(model, cfg, steps_per_epoch=math.ceil(len(train) / cfg.batch_size), replicated=replicated)
    callbacks = [
        EpochRecorder(history_dir / "history.csv", as_dataset(test, targets_for(model, test), 1000)),
        keras.callbacks.TerminateOnNaN(),
        IntervalBackupAndRestore(str(backup_dir), cfg.backup_interval),
    ]
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(history_dir / "tensorboard")))
    verbose = 0 if cfg.quiet else (1 if sys.stdout.isatty() else 2)
    start = time.perf_counter()
    if cfg.pretrain_epochs:
        with strategy.scope():
            pretrain_classifier(model, cfg, unused, verbose)
    history = model.fit(
        as_dataset(train, targets_for(model, train), cfg.batch_size, shuffle_seed=seed, repair=cfg.repair),
        epochs=cfg.num_epochs,
        validation_data=as_dataset(val, targets_for(model, val), 1000) if val is not None else None,
        callbacks=callbacks, verbose=verbose, shuffle=False,  # the dataset reshuffles itself
    )
    losses = history.history.get("loss", [])
    result = {"status": "ok", "seconds": round(time.perf_counter() - start, 2), "epochs_run": len(losses)}
    if any(not math.isfinite(v) for v in losses):
        result.update(status="failed", message=f"loss became NaN/inf at epoch {len(losses)}; round stopped")
    return model, result


def summarise(results: dict) -> dict:
    ok = [r for r in results["rounds"] if r["status"] == "ok"]
    for key in ("test_accuracy", "train_accuracy", "digit_test_accuracy", "validation_accuracy"):
        values = [r[key] for r in ok if r.get(key) is not None]
        results[f"{key}_mean"] = float(np.mean(values)) if values else None
        # Sample std over rounds (ddof=1); a single round has no spread to report.
        results[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else (0.0 if values else None)
    results["rounds_ok"], results["rounds_failed"] = len(ok), len(results["rounds"]) - len(ok)
    return results


def check_resumable(old: dict, cfg: Config, out: Path) -> None:
    new, defaults = cfg.to_dict(), Config().to_dict()
    # A setting the old run did not record yet (an older version of Config) had its default.
    old_cfg = {**defaults, **old.get("config", {})}
    diff = sorted(k for k in new if k not in RESUMABLE_FIELDS and old_cfg[k] != new[k])
    if diff:
        raise RunError(f"{out}: holds a run with other settings ({', '.join(diff)}); use another --out")


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def run(cfg: Config, log=print, images: tuple[Images, Images] | None = None) -> dict:
    """Train `cfg.rounds` rounds; returns the results dict (also in <out>/results.json).
    `images`: the (train, test) images of cfg.data/cfg.test_data, when the caller has loaded them."""
    import tensorflow as tf

    from .distribute import get_strategy, is_chief, task

    # Each round's fresh model retraces predict; TF's warning about it is noise here.
    tf.get_logger().setLevel("ERROR")
    # Same seed, same results on the CPU (GPU kernels and multi-worker reductions may still vary).
    tf.config.experimental.enable_op_determinism()
    cfg = cfg if cfg.out else cfg.replace(out=default_out(cfg))
    chief = is_chief()
    out = Path(cfg.out)
    # Only the chief writes results; other workers keep their backups in a folder of their own.
    work = out if chief else out / ".workers" / "{}-{}".format(*task())
    # Data first: a bad source must fail before anything is written.
    train_images, test_images = images or load_data(cfg.data, cfg.test_data)
    for imgs in (train_images, test_images):
        require_images(len(imgs.images), cfg.pairs, imgs.source)
    if cfg.pretrain_epochs and len(train_images.images) == 2 * cfg.pairs:
        raise ConfigError(f"{train_images.source}: no training images outside the {cfg.pairs} pairs to pre-train on")
    strategy = get_strategy(cfg.strategy)
    work.mkdir(parents=True, exist_ok=True)

    results_path = out / "results.json"
    results = None
    if chief and results_path.is_file():
        try:
            results = json.loads(results_path.read_text())
        except ValueError:
            raise RunError(f"{results_path}: not valid JSON; move it away to start over") from None
        check_resumable(results, cfg, out)
    if results is None:
        results = {"model": cfg.model, "params": None, "rounds": []}
    results.update(config=cfg.to_dict(), data={"train": train_images.source, "test": test_images.source})
    if chief:
        save_config(cfg, out / "config.json")

    done = {r["round"] for r in results["rounds"]}
    todo = [r for r in range(cfg.rounds) if r not in done]
    if done and todo:
        log(f"resuming {out}: rounds {sorted(done)} already done")
    model, started = None, time.perf_counter()
    for i, r in enumerate(todo):
        seed = cfg.seed + r
        pairs, test = draw_round(train_images, test_images, cfg.pairs, seed)
        round_dir = work / f"round-{r:02d}"
        round_dir.mkdir(exist_ok=True)
        if i:
            eta = (time.perf_counter() - started) / i * (len(todo) - i)
            log(f"{cfg.model}: round {r + 1}/{cfg.rounds} (seed {seed}), about {eta:.0f} s left")
        else:
            log(f"{cfg.model}: round {r + 1}/{cfg.rounds} (seed {seed}), {cfg.num_epochs} epochs")
        unused = unused_images(train_images, cfg.pairs, seed) if cfg.pretrain_epochs else None
        model, result = train_round(cfg, pairs, test, round_dir, work / "backup" / f"round-{r:02d}",
                                    strategy, seed, unused)
        result["round"] = r
        results["params"] = int(model.count_params())
        if result["status"] == "ok":
            digits = f", digits {pct(result['digit_test_accuracy'])}" if result["digit_test_accuracy"] is not None else ""
            log(f"{cfg.model} round {r + 1}: train {pct(result['train_accuracy'])}, "
                f"test {pct(result['test_accuracy'])}{digits} ({result['seconds']:.1f} s)")
        else:
            log(f"{cfg.model} round {r + 1}: FAILED: {result['message']}")
        # Every worker keeps its model (in its own folder): the weights must agree across workers.
        atomic_save_model(model, round_dir / "model.keras")
        results["rounds"] = sorted(results["rounds"] + [result], key=lambda x: x["round"])
        if chief:
            atomic_write_json(results_path, summarise(results))
        remove_tree(work / "backup" / f"round-{r:02d}")

    if (work / "backup").is_dir() and not any((work / "backup").iterdir()):
        (work / "backup").rmdir()
    results = summarise(results)
    if not chief:
        return results
    last = out / f"round-{cfg.rounds - 1:02d}" / "model.keras"
    if last.is_file():
        shutil.copyfile(last, out / ".model.keras.tmp")
        os.replace(out / ".model.keras.tmp", out / "model.keras")
    m, s = results["test_accuracy_mean"], results["test_accuracy_std"]
    digits = ""
    if results["digit_test_accuracy_mean"] is not None:
        digits = f", digit accuracy {pct(results['digit_test_accuracy_mean'])}"
    log(f"{cfg.model}: test accuracy {'n/a' if m is None else f'{100 * m:.2f} ± {100 * s:.2f}%'} over "
        f"{results['rounds_ok']} round(s){digits}; {results['params']:,} parameters; run folder {out}")
    if results["rounds_failed"]:
        log(f"{cfg.model}: {results['rounds_failed']} round(s) failed and are left out of the mean")
    if cfg.export and results["rounds_ok"]:
        from .export import export_saved_model, load_keras_model

        model = model if model is not None else load_keras_model(out / "model.keras")
        path = export_saved_model(model, cfg.export_dir, cfg.model)
        results["export"] = str(path)
        atomic_write_json(results_path, results)
        log(f"exported SavedModel: {path}")
    return results
