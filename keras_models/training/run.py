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

import time
from dataclasses import dataclass
from pathlib import Path

from keras_models.core.errors import ConfigError, RunError
from keras_models.core.files import atomic_link, atomic_write_json, lock_folder, remove_tree
from keras_models.core.machine import bfloat16_in_hardware, code_version, provenance, summary
from keras_models.data.images import Images, load_data
from keras_models.models.cost import parameter_counts
from keras_models.training.config import (
    Config,
    check_before_training,
    check_folder,
    check_results,
    check_resumable,
    default_out,
    read_run_file,
    save_config,
)
from keras_models.training.levers import describe
from keras_models.training.results import ok_rounds, pct, pm, summarise
from keras_models.training.rounds import RoundResult, RoundRunner


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


@dataclass
class Run:
    """One run's state, from `Run.start` to its summary: its settings (with their --out), its
    folder, its images, the strategy it trains under, its results so far, and where it logs."""

    cfg: Config
    folder: RunFolder
    images: tuple[Images, Images]
    strategy: object
    log: object = print
    results: dict | None = None
    levers: tuple = ()

    @classmethod
    def start(cls, cfg: Config, images: tuple[Images, Images] | None, log=print, levers=()) -> Run:
        """Checks the data, the devices and the levers before anything is written, then makes the folder."""
        from keras_models.training.distribute import get_strategy, is_chief, task

        if cfg.run.ray_address:  # a cluster that does not answer, in one line before anything is written
            from keras_models.training.ray_rounds import check_address

            check_address(cfg.run.ray_address)
        chief = is_chief()
        images = images or load_data(cfg.recipe.data, cfg.recipe.test_data)
        check_before_training(cfg, images, chief)
        if levers and cfg.run.stack > 1:
            raise ConfigError("--stack trains one plain model per round; a run with levers trains its rounds alone")
        for lever in levers:
            lever.check(cfg, images)
        strategy = get_strategy(cfg.run.strategy)
        cfg = cfg if cfg.run.out else cfg.replace(out=default_out(cfg.spec.model))
        out = Path(cfg.run.out)
        folder = RunFolder(out, out if chief else out / ".workers" / "{}-{}".format(*task()), chief)
        folder.work.mkdir(parents=True, exist_ok=True)
        return cls(cfg, folder, images, strategy, log, None, tuple(levers))

    def resume(self) -> None:
        """The results so far: those of a finished part of the same run, or none. config.json is
        compared before anything else in the folder is read or touched, and written first."""
        cfg, folder = self.cfg, self.folder
        if folder.chief:
            check_folder(cfg)
        results = None
        if folder.chief and folder.results_path.is_file():
            results = read_run_file(folder.results_path)
            check_resumable(results, cfg, folder.out)
            if results.get("levers", []) != describe(self.levers):
                raise RunError(f"{folder.out}: holds a run with other levers; use another --out")
            check_results(results, folder.results_path, cfg.run.rounds)
        if results is None:
            results = {"model": cfg.spec.model, "params": None, "trainable_params": None, "rounds": []}
        data = {"train": self.images[0].source, "test": self.images[1].source}
        results.update(config=cfg.to_groups(), levers=describe(self.levers), data=data)
        if folder.chief:
            save_config(cfg, folder.out / "config.json")
        self.results = results

    def train_rounds(self):
        """Trains the rounds not done yet; returns the last round's model (None if none ran)."""
        cfg, folder, log = self.cfg, self.folder, self.log
        rounds = cfg.run.rounds
        done = {r["round"] for r in self.results["rounds"]}
        todo = [r for r in range(rounds) if r not in done]
        if done and todo:
            # Rounds count from 1 on the console, as "round 2/10" does; folders from round-00.
            finished = ", ".join(str(r + 1) for r in sorted(done))
            log(f"resuming {folder.out}: round(s) {finished} of {rounds} already done")
        if cfg.spec.precision == "mixed_bfloat16":
            import tensorflow as tf

            if not (bfloat16_in_hardware() or tf.config.list_physical_devices("GPU")):
                log("note: this CPU or its kernel library emulates bfloat16: --precision mixed_bfloat16 trains slower")
        if todo and (cfg.run.ray_address or (cfg.run.workers > 1 and len(todo) > 1)):
            return self.train_on_ray(todo)
        if cfg.run.stack > 1 and len(todo) > 1:
            from keras_models.training.stacked import StackedRunner

            runner = StackedRunner(cfg, self.strategy, folder.work)
        else:
            runner = RoundRunner(cfg, self.strategy, folder.work, len(todo), self.levers, self.images)
        model = None
        for model, result in runner.rounds(todo, self.images, log):
            self.round_done(result, parameter_counts(model) if model is not None else {})
        self.remove_empty_backups()
        return model

    def train_on_ray(self, todo: list[int]):
        """The rounds of `todo` as Ray tasks (keras_models.training.ray_rounds); returns the model
        of the last of them, loaded from its round folder."""
        from keras_models.models.saving import load_keras_model
        from keras_models.training.ray_rounds import train_on_ray

        for result, counts in train_on_ray(self.cfg, self.folder.work, self.images, todo, self.log, self.levers):
            self.round_done(RoundResult(**result), counts)
        self.remove_empty_backups()
        return load_keras_model(self.folder.work / f"round-{todo[-1]:02d}" / "model.keras")

    def remove_empty_backups(self) -> None:
        backup = self.folder.work / "backup"
        if backup.is_dir() and not any(backup.iterdir()):
            backup.rmdir()

    def round_done(self, result: RoundResult, counts: dict) -> None:
        """A round's line, its entry in results.json (written at once) and its backup removed.
        `counts`: the model's parameters (models.cost.parameter_counts)."""
        model, results, r = self.cfg.spec.model, self.results, result.round
        results.update(counts)
        if result.ok:
            digits = f", digits {pct(result.digit_test_accuracy)}" if result.digit_test_accuracy is not None else ""
            digits += f", dev {pct(result.dev_accuracy)}" if result.dev_accuracy is not None else ""
            self.log(
                f"{model} round {r + 1}: train {pct(result.train_accuracy)}, "
                f"test {pct(result.test_accuracy)}{digits} ({result.seconds:.1f} s)"
            )
        else:
            self.log(f"{model} round {r + 1}: FAILED: {result.message}")
        results["rounds"] = sorted([*results["rounds"], result.to_dict()], key=lambda x: x["round"])
        if self.folder.chief:
            atomic_write_json(self.folder.results_path, summarise(results))
        remove_tree(self.folder.work / "backup" / f"round-{r:02d}")

    def report(self) -> None:
        """The last round's model as <out>/model.keras (a second name of the round's file, not a
        copy), and the summary lines."""
        from keras_models.training.plots import curves, plot_curves

        cfg, out, results, model = self.cfg, self.folder.out, self.results, self.cfg.spec.model
        last = out / f"round-{cfg.run.rounds - 1:02d}" / "model.keras"
        if last.is_file():
            atomic_link(last, out / "model.keras")
        m, s = results["test_accuracy_mean"], results["test_accuracy_std"]
        digits = ""
        if results["digit_test_accuracy_mean"] is not None:
            digits = f", digit accuracy {pct(results['digit_test_accuracy_mean'])}"
        self.log(
            f"{model}: test accuracy {'n/a' if m is None else pm(m, s) + '%'} over "
            f"{results['rounds_ok']} round(s){digits}; {count(results.get('trainable_params'))} trainable parameters; "
            f"run folder {out}"
        )
        if results["rounds_failed"]:
            self.log(f"{model}: {results['rounds_failed']} round(s) failed and are left out of the mean")
        title = f"{model}: mean ± 1 std over {results['rounds_ok']} round(s)"
        drawn = plot_curves(out / "curves.png", [(model, curves(out))], title)
        if drawn:
            self.log(f"learning curves: {drawn}")

    def export(self, model) -> None:
        from keras_models.models.saving import load_keras_model
        from keras_models.serving.export import export_saved_model

        out, start = self.folder.out, time.perf_counter()
        model = model if model is not None else load_keras_model(out / "model.keras")
        card = model_card(self.cfg, out, self.results, self.images[0].images)
        path = export_saved_model(model, self.cfg.run.export_dir, self.cfg.spec.model, metadata=card)
        self.results["export"] = str(path)
        # The export is the last round's last file: its wait counts in that round's wall-clock.
        last = self.results["rounds"][-1]
        if last.get("wall_seconds") is not None:
            last["export_seconds"] = round(time.perf_counter() - start, 2)
            last["wall_seconds"] = round(last["wall_seconds"] + last["export_seconds"], 2)
        self.results = summarise(self.results)
        atomic_write_json(self.folder.results_path, self.results)
        self.log(f"exported SavedModel: {path}")


def count(n: int | None) -> str:
    """A parameter count as the summary line prints it; a run folder written before trainable
    parameters were counted has none."""
    return "n/a" if n is None else f"{n:,}"


def model_card(cfg: Config, run_folder: Path, results: dict, train_images) -> dict:
    """What an export carries about itself, written beside saved_model.pb as metadata.json."""
    from datetime import datetime, timezone
    from importlib.metadata import version

    return {
        "model": cfg.spec.model,
        "config": cfg.to_groups(),
        "commit": code_version(),
        "run_folder": str(Path(run_folder).resolve()),
        "test_accuracy_mean": results.get("test_accuracy_mean"),
        "test_accuracy_std": results.get("test_accuracy_std"),
        "rounds": results.get("rounds_ok"),
        "test_data": results.get("data", {}).get("test"),
        "pixel_range": [float(train_images.min()), float(train_images.max())],
        "versions": {p: version(p) for p in ("tensorflow", "keras", "numpy")},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def run(
    cfg: Config, log=print, images: tuple[Images, Images] | None = None, levers=(), command: str | None = None
) -> dict:
    """Train `cfg.run.rounds` rounds; returns the results dict (also in <out>/results.json).
    `images`: the (train, test) images of the recipe's data and test data, when the caller has
    loaded them. `levers`: what a study or a user changes beyond the settings (training.levers).
    `command`: the command line that results.json records beside the commits and machines its
    rounds ran on and the date (None from Python)."""
    import tensorflow as tf

    from keras_models.training.fitting import set_determinism

    # Each round's fresh model retraces predict; TF's warning about it is noise here.
    tf.get_logger().setLevel("ERROR")
    # Same seed, same results on the CPU (GPU kernels and multi-worker reductions may still vary).
    set_determinism(cfg.recipe.jit_compile)
    state = Run.start(cfg, images, log, levers)
    held = lock_folder(state.folder.work)
    try:
        state.resume()
        model = state.train_rounds()
        state.results = summarise(state.results)
        if not state.folder.chief:
            return state.results
        rounds = ok_rounds(state.results)
        if model is not None or "provenance" not in state.results:  # a finished run is left as it was
            state.results["provenance"] = provenance(
                command,
                [r.get("commit", "unknown") for r in rounds],
                [summary(r["machine"]) for r in rounds if "machine" in r],
            )
            atomic_write_json(state.folder.results_path, state.results)
        state.report()
        if state.cfg.run.export and state.results["rounds_ok"]:
            if model is None and state.results.get("export"):
                # Nothing new was trained: the model is the one exported already.
                log(f"already exported as {state.results['export']}; scripts/export.py exports it again")
            else:
                state.export(model)
        return state.results
    finally:
        held.close()
