"""What every command-line entry point shares: quiet TensorFlow logs, and turning the
library's one-line errors into a message and exit code 2 instead of a traceback."""
from __future__ import annotations

import os
import sys

from .errors import USER_ERRORS

# Before TensorFlow is imported anywhere: its C++ INFO/WARNING lines drown the progress output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_cli(fn, prog: str) -> int:
    """Call fn(); a user error or an OS error (read-only folder, disk full) becomes one line."""
    try:
        fn()
    except USER_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"{prog}: error: cannot write or read{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0
