"""file:///path: a mounted or local folder as the office store (the demo's office, or a
share the office mounts on the box)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any, BinaryIO

from appliance.errors import SyncError, SyncNetworkError, SyncStopError
from appliance.fsutil import fsync_dir
from appliance.sync.destination import FileStore, RemoteFile
from appliance.sync.seal import sha256_of


def _failure(e: OSError, what: str) -> SyncError:
    """An OSError as sync sees it: a full office disk stops sync; the rest is tried later."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return SyncStopError(f"the office store is full ({what}): free space there, then "
                             "sync again", kind="disk_full")
    return SyncNetworkError(f"the office folder could not be used ({what}: {e.strerror})")


class _LocalPart(RemoteFile):
    def __init__(self, f: BinaryIO, name: str) -> None:
        self._f = f
        self._name = name

    def write(self, data: bytes) -> None:
        try:
            self._f.write(data)
        except OSError as e:
            raise _failure(e, self._name) from None

    def flush_to_disk(self) -> None:
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as e:
            raise _failure(e, self._name) from None

    def close(self) -> None:
        try:
            self._f.close()
        except OSError:
            pass  # a failed flush was already reported by write or flush_to_disk


class FolderDestination(FileStore):
    """Files under a folder; the folder must exist (a missing mount is not made)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"

    def connect(self) -> None:
        if not self.root.is_dir():
            raise SyncNetworkError(f"the office folder {self.root} is not there (not mounted?)")

    def close(self) -> None:
        pass

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise SyncError(f"{name!r} would leave the office folder")
        return path

    def size_of(self, name: str) -> int | None:
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as e:
            raise _failure(e, name) from None

    def open_part(self, name: str, offset: int) -> RemoteFile:
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            f = path.open("r+b" if path.exists() else "wb")
            f.truncate(offset)
            f.seek(offset)
        except OSError as e:
            raise _failure(e, name) from None
        return _LocalPart(f, name)

    def publish(self, part: str, final: str) -> None:
        src, dst = self._path(part), self._path(final)
        try:
            os.link(src, dst)   # fails if the final name exists: never overwrite
            src.unlink()
            fsync_dir(dst.parent)
        except FileExistsError:
            raise SyncError(f"{final} already exists at the office") from None
        except OSError as e:
            raise _failure(e, final) from None

    def remove(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as e:
            raise _failure(e, name) from None

    def check_room(self, what: str, needed: int) -> None:
        try:
            free = shutil.disk_usage(self.root).free
        except OSError as e:
            raise _failure(e, what) from None
        if free < needed:
            raise SyncStopError(f"the office store is full ({free} bytes free, {what} needs "
                                f"{needed} more): free space there, then sync again",
                                kind="disk_full")

    def sha256_of(self, name: str) -> str | None:
        try:
            return sha256_of(self._path(name))
        except OSError as e:
            raise _failure(e, name) from None

    def describe(self) -> dict[str, Any]:
        return {"folder": str(self.root)}
