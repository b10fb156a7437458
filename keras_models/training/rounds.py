"""One round: its pairs, drawn from its seed; what its levers do before it (training.levers);
its members, fitted one after another (keras_models.training.fitting); its model (one member,
or their ensemble); and its typed result.

With several members a round keeps each (round-NN/member-M), as a lever keeps the models it fits
beside them (`RoundRunner.fit_kept`), so that a killed round resumes at its first unfinished fit.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from keras_models.core.machine import code_version
from keras_models.core.machine import describe as describe_machine
from keras_models.data.images import Images, Pairs, concat, dev_pairs, draw_round, swapped
from keras_models.data.pipeline import split_validation
from keras_models.models.builder import NO_TTA, TTA_VIEWS
from keras_models.training.config import Config
from keras_models.training.fitting import Fit, FitResult, fit_member, reusable
from keras_models.training.results import evaluate_pairs, scoring_batch
from keras_models.training.rules import MEMBER_SEED_STRIDE


@dataclass(frozen=True)
class RoundData:
    """The pairs of round `index`, all drawn from its seed."""

    index: int
    seed: int
    train: Pairs  # the round's training pairs, less the validation split, plus their swaps with cfg.recipe.swap
    val: Pairs | None
    test: Pairs
    dev: Pairs | None  # pairs of training images outside the round's pairs (cfg.recipe.dev_pairs)
    drawn: int  # the seed its pairs were drawn from (round 0's with --pairs-per-study once)

    @classmethod
    def draw(cls, cfg: Config, images: tuple[Images, Images], index: int) -> RoundData:
        seed = cfg.recipe.seed + index
        # --pairs-per-study once: the pairs of round 0 in every round, the round's own seed for the rest.
        drawn = cfg.recipe.seed if cfg.recipe.pairs_per_study == "once" else seed
        pairs, test = draw_round(*images, cfg.recipe.pairs, drawn)
        dev = dev_pairs(images[0], cfg.recipe.pairs, cfg.recipe.dev_pairs, drawn) if cfg.recipe.dev_pairs else None
        train, val = split_validation(pairs, cfg.recipe.validation_split)
        if cfg.recipe.swap:  # every training pair also swapped, its target from the classes
            train = concat(train, swapped(train))
        return cls(index, seed, train, val, test, dev, drawn)


@dataclass(kw_only=True)
class RoundResult(FitResult):
    """What results.json keeps of a round: its fit's (FitResult: status, this invocation's
    training seconds and epochs, teachers included, and the totals over every invocation), and
    what is the round's own. Accuracies are None for a failed round."""

    round: int
    seed: int
    # This invocation's wall-clock for the round, from drawing its pairs to its last file
    # written: building, tracing, training, evaluation, the test curve, saving (and, for the
    # run's last round, the export). What a user waits for, beside the training `seconds`.
    wall_seconds: float | None = None
    machine: dict = field(default_factory=describe_machine)
    commit: str = field(default_factory=code_version)  # the code that trained it
    train_accuracy: float | None = None  # the training pairs scored after training, in inference mode
    test_accuracy: float | None = None
    digit_test_accuracy: float | None = None
    validation_accuracy: float | None = None
    dev_accuracy: float | None = None
    members: list[dict] | None = None
    lever_fits: list[dict] | None = None  # what the round's levers fitted before its model (teachers, say)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        d = asdict(self)
        d = {"round": d.pop("round"), "seed": d.pop("seed"), **d}  # a round's entry opens with its number
        keep = ("digit_test_accuracy",) if self.ok else ()  # null for the models without digit outputs
        return {k: v for k, v in d.items() if v is not None or k in keep}


def scored(result: RoundResult, model, data: RoundData, batch: int) -> RoundResult:
    """`result` with the round model's accuracies on the round's pairs, scored `batch` at a time."""
    tr, te = evaluate_pairs(model, data.train, batch), evaluate_pairs(model, data.test, batch)
    result.train_accuracy, result.test_accuracy = tr["accuracy"], te["accuracy"]
    result.digit_test_accuracy = te.get("digit_accuracy")
    if data.val is not None:
        result.validation_accuracy = evaluate_pairs(model, data.val, batch)["accuracy"]
    if data.dev is not None:
        result.dev_accuracy = evaluate_pairs(model, data.dev, batch)["accuracy"]
    return result


class RoundRunner:
    """Fits the rounds of one run, with its `levers` (training.levers) and its (train, test)
    `images`. It counts the fits still to come, for the console's estimate."""

    def __init__(self, cfg: Config, strategy, work: Path, rounds_left: int, levers=(), images=None):
        self.cfg, self.strategy, self.work = cfg, strategy, work
        self.levers, self.images = tuple(levers), images
        self.fits_left = rounds_left * cfg.recipe.members
        # The model of the last round, whose traced step the next round reuses (fitting.reusable).
        self.traced = None

    def run(self, data: RoundData):
        """(model, RoundResult). With several members (or cfg.recipe.tta) the model is their ensemble."""
        from keras_models.data.pipeline import pixel_stats
        from keras_models.models.builder import ensemble_model
        from keras_models.training.levers import LeverFit

        cfg = self.cfg
        lever_fit = LeverFit(cfg, data, self.images, self.strategy, pixel_stats(data.train), self)
        # What the levers fit before the members (teachers, say) counts in the round's seconds:
        # the model could not exist without it.
        before = [part for lever in self.levers for part in lever.before_fit(lever_fit)]
        broken = next((p for p in before if p["status"] != "ok"), None)
        if broken is not None:
            return None, self.failed(data, FitResult.from_dict(broken), broken["message"])
        alone, fitted, parts = cfg.recipe.members == 1, [], []
        for m in range(cfg.recipe.member, cfg.recipe.member + cfg.recipe.members):
            seed = data.seed + MEMBER_SEED_STRIDE * m
            fit = self.fit_for(cfg, seed, None if alone else f"member-{m}", data)
            if alone:
                model, part = self._fit_alone(fit, data, lever_fit)
            else:
                model, part = self.fit_kept(fit, data, self.levers, lever_fit)
            if part.status != "ok":
                return model, self.failed(data, part, part.message if alone else f"member {m}: {part.message}")
            fitted.append(model)
            parts.append(part.to_dict())
        every = parts + before
        result = RoundResult(
            "ok",
            round(sum(p["seconds"] for p in every), 2),
            parts[-1]["epochs_run"],
            round(sum(p["seconds_total"] for p in every), 2),
            parts[-1]["epochs_total"],
            running_train_accuracy=parts[-1].get("running_train_accuracy") if alone else None,
            round=data.index,
            seed=data.seed,
            lever_fits=before or None,
        )
        model = fitted[0]
        if cfg.recipe.members > 1 or cfg.recipe.tta:
            model = ensemble_model(fitted, TTA_VIEWS if cfg.recipe.tta else NO_TTA, name=cfg.spec.model)
            members = range(cfg.recipe.member, cfg.recipe.member + cfg.recipe.members)
            result.members = [{"member": m, **p} for m, p in zip(members, parts, strict=True)]
        return model, scored(result, model, data, scoring_batch(cfg))

    def fit_for(self, cfg: Config, seed: int, name: str | None, data: RoundData) -> Fit:
        """The next fit of the run: in the round's own folder (name None), or in round-NN/<name>."""
        self.fits_left = max(0, self.fits_left - 1)
        round_dir = self.work / f"round-{data.index:02d}"
        backup_dir = self.work / "backup" / f"round-{data.index:02d}"
        if name is not None:
            round_dir, backup_dir = round_dir / name, backup_dir / name
        return Fit(cfg, seed, round_dir, backup_dir, data.test, self.fits_left)

    def _fit_now(self, fit: Fit, data: RoundData, levers, lever_fit, traced=None):
        fit.history_dir.mkdir(parents=True, exist_ok=True)
        return fit_member(fit, data, self.strategy, levers, lever_fit, traced)

    def _fit_alone(self, fit: Fit, data: RoundData, lever_fit):
        """The round's one model, on the step traced by the round before when `reusable`."""
        if not reusable(self.cfg, self.strategy, self.levers):
            return self._fit_now(fit, data, self.levers, lever_fit)
        model, part = self._fit_now(fit, data, (), lever_fit, traced=self.traced)
        self.traced = model
        return model, part

    def fit_kept(self, fit: Fit, data: RoundData, levers, lever_fit):
        """A fit with `levers`, saved in its folder (model.keras, result.json) when it ends, and
        loaded from there instead of refitted when a resumed round finds it: a member of an
        ensemble, or a model a lever fits beside the round's (a teacher)."""
        from keras_models.core.files import atomic_write_json
        from keras_models.models.saving import atomic_save_model, load_keras_model

        model_path, result_path = fit.history_dir / "model.keras", fit.history_dir / "result.json"
        if result_path.is_file() and model_path.is_file():
            return load_keras_model(model_path), FitResult.from_dict(json.loads(result_path.read_text()))
        model, part = self._fit_now(fit, data, levers, lever_fit)
        if part.status == "ok":
            atomic_save_model(model, model_path)
            atomic_write_json(result_path, part.to_dict())
        return model, part

    @staticmethod
    def failed(data: RoundData, part: FitResult, message: str) -> RoundResult:
        return RoundResult(**{**part.to_dict(), "message": message}, round=data.index, seed=data.seed)

    def rounds(self, indices: list[int], images, log=print):
        """Yields (model, RoundResult) of each round of `indices`, one after another, its pairs
        drawn from its seed and its model.keras saved (`save_round`)."""
        cfg, started = self.cfg, time.perf_counter()
        for i, r in enumerate(indices):
            start = time.perf_counter()
            data = RoundData.draw(cfg, images, r)
            if i:
                eta = (start - started) / i * (len(indices) - i)
                log(f"{cfg.spec.model}: round {r + 1}/{cfg.run.rounds} (seed {data.seed}), about {eta:.0f} s left")
            else:
                log(f"{cfg.spec.model}: round {r + 1}/{cfg.run.rounds} (seed {data.seed}), {cfg.num_epochs} epochs")
            model, result = self.run(data)
            if model is not None:  # None: a lever's fit before the round's model failed
                # Every worker keeps its model (in its own folder): the weights must agree across workers.
                save_round(model, result, self.work, time.perf_counter() - start)
            yield model, result


def save_round(model, result: RoundResult, work: Path, wall_seconds: float) -> None:
    """A finished round's model, as round-NN/model.keras in `work`, and its wall-clock: what the
    local, Ray and stacked runners do with every round they train."""
    from keras_models.models.saving import atomic_save_model

    round_dir = work / f"round-{result.round:02d}"
    round_dir.mkdir(parents=True, exist_ok=True)
    atomic_save_model(model, round_dir / "model.keras")
    result.wall_seconds = round(wall_seconds, 2)
