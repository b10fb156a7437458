"""TensorFlow's start-up lines, kept out of the commands' output.

TensorFlow 2.21 writes lines such as "WARNING: All log messages before absl::InitializeLog() is
called are written to STDERR" and "Could not find cuda drivers on your machine" straight to the
process's stderr while it is imported, before TF_CPP_MIN_LOG_LEVEL is read
(tensorflow/tensorflow#100442). `install()` adds an import hook that holds file descriptor 2
while the `tensorflow` package itself is imported, and writes what was held back to stderr if
the import fails, so that a broken install still says why. Nothing else is held: TensorFlow
is imported only where a command needs it, and later lines are TF_CPP_MIN_LOG_LEVEL's to keep.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import tempfile


class _HeldStderr(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                self.loader.exec_module(module)
            except BaseException:
                os.dup2(saved, 2)
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _HeldStderr(spec.loader)
                return spec
        return None


def install() -> None:
    """Once per process, before TensorFlow is imported (a no-op after)."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())
