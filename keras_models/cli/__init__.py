"""What every command-line entry point shares: quiet TensorFlow logs, the flags that build a
`Config`, and turning the library's one-line errors into a message and exit code 2 instead of
a traceback. Each command is a module here with `main(argv=None)`; `scripts/` and the console
entry points of pyproject.toml call them."""

from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

# Before TensorFlow is imported anywhere: its C++ INFO/WARNING lines drown the progress output,
# and on a machine without an NVIDIA driver its one ERROR line at start-up ("failed call to
# cuInit") only says that there is no GPU. A value the user sets wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if os.path.exists("/dev/nvidiactl") else "3")

from keras_models.cli import quiet  # noqa: E402

quiet.install()  # and its lines while it is imported (cli/quiet.py)

from keras_models.core.errors import USER_ERRORS  # noqa: E402
from keras_models.core.fields import accepts, describe, field_type  # noqa: E402
from keras_models.training.config import Config  # noqa: E402
from keras_models.training.settings import FIELDS, GROUPS  # noqa: E402

# The fallback start of the command's clock, where the process's own start cannot be read.
_IMPORTED = time.time()


def process_started() -> float:
    """When this process started (seconds since the epoch): its start in /proc (Linux), so that
    the wall-clock a command reports includes Python's and the imports' start-up; elsewhere,
    when this module was imported."""
    try:
        stat, uptime = (Path(p).read_text() for p in ("/proc/self/stat", "/proc/uptime"))
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, after the command's name
        uptime = float(uptime.split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORTED


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line, with a pointer to --help, instead of the
    whole usage block before the line that matters."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, what schedulers and `kill` send: stopped like Ctrl-C."""


def _terminate(signum, frame):
    raise Terminated()


def run_cli(fn, prog: str, resume_hint=None) -> int:
    """Call fn(); a user error or an OS error (read-only folder, disk full) becomes one line,
    and a command that ends well ends with its wall-clock since the process started.
    `resume_hint()`: the command that resumes the work, said when it is interrupted."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        fn()
    except USER_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{prog}: error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        how = "terminated" if isinstance(e, Terminated) else "interrupted"
        hint = resume_hint() if resume_hint else None
        print(f"{prog}: {how}" + (f"; to resume: {hint}" if hint else ""), file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    # On stderr, after the command's own output, which stays parseable on stdout.
    print(f"{prog}: done in {time.time() - process_started():.1f} s of wall-clock", file=sys.stderr)
    return 0


def os_error_line(e: OSError) -> str:
    """One line for an OSError. h5py's (Keras' weights files) carry no errno and a message of
    several lines; the errno it names is read from the message."""
    import errno
    import re

    code = e.errno or next((int(m) for m in re.findall(r"errno = (\d+)", str(e))), None)
    why = os.strerror(code) if code in errno.errorcode else (e.strerror or str(e)).splitlines()[0]
    where = e.filename or next(iter(re.findall(r"filename = '([^']+)'", str(e))), None)
    return f"cannot write or read{f' {where}' if where else ''}: {why}"


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
        if action.default is None or action.default is False or "(default: " in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


SECTIONS = {"spec": "model spec (what the builder reads)", "recipe": "training recipe", "run": "run"}


def flag_default(f, kind) -> str:
    """A setting's default as --help and the docs show it."""
    if f.metadata["default_text"]:
        return f.metadata["default_text"]
    if kind is bool:
        return "on" if f.default else "off"
    return ",".join(map(str, f.default)) if kind is tuple else f"{f.default:g}" if kind is float else str(f.default)


def settings_markdown() -> str:
    """The table of every setting's flag, default and help, for docs/GUIDE.md (a test keeps the
    two equal)."""
    lines = ["| group | flag | default | what |", "| --- | --- | --- | --- |"]
    for name, (group, f) in FIELDS.items():
        if not f.metadata["flag"]:
            continue
        kind, _ = field_type(GROUPS[group], name)
        flag = "--" + name.replace("_", "-")
        flag = f"`--[no-]{flag[2:]}`" if kind is bool and f.default else f"`{flag}`"
        what = f.metadata["help"]
        lines.append(f"| {group} | {flag} | {flag_default(f, kind)} | {what} |")
    return "\n".join(lines) + "\n"


def add_config_args(p: argparse.ArgumentParser, *, skip=(), only=None, defaults=None) -> None:
    """One flag per declared setting (keras_models.training.settings), less the settings named in
    `skip` (a command has no use for them, so they are not offered), or only those in `only`.
    Types, ranges, choices, help and the default shown come from the declaration; `defaults`
    gives a command's own default for a setting (the study's 10 rounds), shown in its help.
    argparse's defaults stay None otherwise, so that a flag the user did not give can be told
    apart from one they gave (see config_from_args)."""
    defaults = defaults or {}
    groups = {g: p.add_argument_group(title) for g, title in SECTIONS.items()}
    for name, (group, f) in FIELDS.items():
        meta = f.metadata
        if name in skip or (only is not None and name not in only) or not meta["flag"]:
            continue
        kind, _ = field_type(GROUPS[group], name)
        shown = defaults[name] if name in defaults else flag_default(f, kind)
        text = meta["help"].replace("%", "%%") + f" (default: {shown})"
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            action = argparse.BooleanOptionalAction if f.default else "store_const"
            extra = {} if f.default else {"const": True}
            groups[group].add_argument(flag, dest=name, action=action, help=text, **extra)
        elif meta["choices"] is not None:
            groups[group].add_argument(flag, dest=name, choices=meta["choices"], help=text)
        elif kind is str:
            groups[group].add_argument(flag, dest=name, metavar=name.upper(), help=text)
        else:
            convert = int_list if kind is tuple else number(kind, lambda v, m=meta: accepts(m, v), describe(meta, kind))
            metavar = "W,W" if kind is tuple else name.upper()
            groups[group].add_argument(flag, dest=name, type=convert, metavar=metavar, help=text)
    p.set_defaults(**defaults)


def config_from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """Flags the user gave override `base` (e.g. a recipe or a hyperparameter file)."""
    base = base or Config()
    return base.replace(**{k: v for k, v in vars(args).items() if k in FIELDS and v is not None})
