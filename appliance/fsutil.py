"""File-system helpers: atomic writes, directory fsync, free space, ballast, folder locks."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO

from appliance.errors import BusyError
from appliance.layout import LOCK_NAME


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write `obj` as pretty JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


@contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """A file to write `path` through: a temp file beside it, fsynced and renamed into
    place when the block ends well, removed when it does not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def publish(tmp: Path, final: Path) -> None:
    """Fsync a finished temp file and rename it into place."""
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)


def free_bytes(path: Path) -> int:
    """Bytes free for an unprivileged writer on the file system holding `path`."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def ensure_ballast(path: Path, size: int) -> bool:
    """Keep `size` bytes reserved in a file at `path`; False if there is no room for it.

    Freed when the disk fills, the ballast lets the catalog still record what
    happened (SQLite needs a little room to commit) instead of failing silently.
    """
    try:
        if path.exists() and path.stat().st_size >= size:
            return True
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True
    except OSError:
        path.unlink(missing_ok=True)
        return False


def release_ballast(path: Path) -> bool:
    """Delete the ballast file; True if it was there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def lock_directory(directory: Path) -> IO[bytes]:
    """Hold an exclusive lock on a folder (a recording, an import being staged) for as
    long as the returned handle is open; BusyError if another process holds it."""
    handle = open(directory / LOCK_NAME, "ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise BusyError(f"{directory.name} is in use by another process") from None
    return handle


def is_locked(directory: Path) -> bool:
    """True if another process holds the folder's lock (it is being recorded or staged)."""
    try:
        handle = lock_directory(directory)
    except BusyError:
        return True
    except OSError:
        return False
    handle.close()
    return False
