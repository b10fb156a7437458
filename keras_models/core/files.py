"""Writes that never leave a half-written file behind: write beside the target, then rename."""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from pathlib import Path


@functools.cache
def default_file_mode() -> int:
    """The mode open() gives a new file under this process's umask (0o644 under the usual 022).
    Read once: os.umask can only be read by setting it."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes its file 0600; the results are as readable as any other file written.
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:  # a failed write names no file; the user needs the one meant
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def atomic_link(source: str | Path, target: str | Path) -> None:
    """`target` becomes a second name of `source` (a hard link: no second copy on disk), or a
    copy where the file system has no hard links; renamed into place either way."""
    source, target = Path(source), Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(folder: str | Path, what: str) -> None:
    """Refuses, in one line, a folder that could not be written when the time comes: the
    nearest part of the path that exists must be a folder that takes a new file. Nothing is
    created but a probe file, removed at once."""
    from keras_models.core.errors import RunError

    folder = Path(folder)
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise RunError(f"{what} {folder}: cannot write there, {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".write-probe-"):
            pass
    except OSError as e:
        raise RunError(f"{what} {folder}: cannot write there ({e.strerror or e})") from None


def claim_folder(parent: str | Path, name: str) -> Path:
    """A new folder `parent/name`, or `name-2`, `name-3`, ... when that exists: mkdir either
    makes a folder or fails, so two processes starting together never get the same one."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = parent / (name if n == 1 else f"{name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{parent / name}: 10,000 folders of that name exist")


def remove_if_unused(folder: str | Path) -> None:
    """Removes `folder` if a run claimed it and wrote nothing into it but its lock, so that a run
    refused before it began leaves no empty folder behind."""
    folder = Path(folder)
    if folder.is_dir() and {p.name for p in folder.iterdir()} <= {".lock"}:
        (folder / ".lock").unlink(missing_ok=True)
        folder.rmdir()


def remove_tree(path: str | Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def lock_folder(folder: str | Path):
    """An exclusive lock on `folder` for as long as the returned file stays open: a second
    process that wants it stops with one line naming the process that holds it."""
    import fcntl

    from keras_models.core.errors import RunError

    # Held open on purpose: the lock lasts as long as the handle, which the caller closes.
    handle = open(Path(folder) / ".lock", "a+")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunError(f"{folder}: in use by process {holder}; wait for it to end or use another --out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
