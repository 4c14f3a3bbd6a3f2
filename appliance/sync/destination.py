"""An office store as the sync run sees it, and the resumable copy that file-like stores
(a folder, SFTP) share: append into `<name>.part` from what the office already holds,
flush to its disk, then publish under the final name with a rename that never overwrites.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from appliance.catalog import SyncItem
from appliance.errors import SyncError
from appliance.sync.throttle import Throttle

CHUNK = 256 * 1024
# Bytes between flushes to the office's disk (and to the catalog). Waiting for each flush
# also bounds what is in flight: a link that breaks loses at most this much plus the
# socket buffers, and only that is sent again.
FLUSH_EVERY = 2 * 1024 * 1024


@dataclass
class Progress:
    """Where a send reports to: bytes safely at the office, bytes sent again, and (S3)
    the multipart upload to resume."""

    sent: Callable[[int, int], None]                                  # (at_office, resent)
    multipart: Callable[[str | None, list[dict[str, Any]]], None] = lambda _u, _p: None


class Destination(abc.ABC):
    """The office store: send a sealed file under its name, resuming, and check it."""

    url: str   # shown to people and in the audit log (never a secret)

    @abc.abstractmethod
    def connect(self) -> None:
        """Reach the office; SyncNetworkError to try later, SyncStopError to stop."""

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of the connection."""

    @abc.abstractmethod
    def send(self, item: SyncItem, path: Path, progress: Progress, throttle: Throttle,
             stop: threading.Event) -> bool:
        """Make the sealed file `path` lie complete at item.remote_name, sending only what
        the office does not hold yet, and verified there (size, and a hash where the
        store gives one): True. False if `stop` came first (the rest goes next time).
        SyncError if the office copy does not match (it is then sent again from the
        start on the next try)."""

    def describe(self) -> dict[str, Any]:
        """What the Sync screen shows about the destination (beyond reachability)."""
        return {}


class RemoteFile(abc.ABC):
    """An open `.part` file at the office, positioned for writing."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Append bytes."""

    @abc.abstractmethod
    def flush_to_disk(self) -> None:
        """Make what was written survive a crash at the office."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the handle."""


class FileStore(Destination):
    """A store of files and folders: a mounted folder, or SFTP."""

    @abc.abstractmethod
    def size_of(self, name: str) -> int | None:
        """The size of a file at the office, None if there is none."""

    @abc.abstractmethod
    def open_part(self, name: str, offset: int) -> RemoteFile:
        """Open `name` (made if missing, with its folders) to write at `offset`."""

    @abc.abstractmethod
    def publish(self, part: str, final: str) -> None:
        """Rename part → final, failing (SyncError) rather than overwrite a file."""

    @abc.abstractmethod
    def remove(self, name: str) -> None:
        """Delete a file at the office (a `.part` that went wrong)."""

    def check_room(self, what: str, needed: int) -> None:
        """SyncStopError (disk_full) if the office cannot hold `needed` more bytes (where
        the store can tell)."""

    def sha256_of(self, name: str) -> str | None:
        """The sha256 of a file at the office, if the store can tell (SFTP cannot)."""
        return None

    def send(self, item: SyncItem, path: Path, progress: Progress, throttle: Throttle,
             stop: threading.Event) -> bool:
        size = path.stat().st_size
        final, part = item.remote_name, item.remote_name + ".part"
        there = self.size_of(final)
        if there is None:
            if not self._send_part(part, path, size, progress, throttle, stop):
                return False
            there = self.size_of(part)
            if there != size:
                raise SyncError(f"{part} holds {there} bytes at the office, not {size}")
            self.publish(part, final)
        # Published now or by a run that died before the catalog heard of it: check it.
        self._verify(item, final, size)
        return True

    def _send_part(self, part: str, path: Path, size: int, progress: Progress,
                   throttle: Throttle, stop: threading.Event) -> bool:
        offset = self.size_of(part) or 0
        if offset > size:   # not ours, or damaged: start again
            self.remove(part)
            offset = 0
        progress.sent(offset, 0)
        self.check_room(part, size - offset)   # nothing sent in vain to a full office
        remote = self.open_part(part, offset)
        try:
            with path.open("rb") as f:
                f.seek(offset)
                return _copy(f, remote, offset, size, progress, throttle, stop)
        finally:
            remote.close()

    def _verify(self, item: SyncItem, final: str, size: int) -> None:
        there = self.size_of(final)
        if there != size:
            raise SyncError(f"the office copy of {final} has {there} bytes, not {size}")
        digest = self.sha256_of(final)
        if digest is not None and digest != item.sealed_sha256:
            raise SyncError(f"the office copy of {final} differs from what was sent")


def _copy(f: BinaryIO, remote: RemoteFile, offset: int, size: int, progress: Progress,
          throttle: Throttle, stop: threading.Event) -> bool:
    done = offset
    unflushed = 0
    while done < size:
        if stop.is_set():
            break
        chunk = f.read(min(CHUNK, size - done))
        if not chunk:
            raise SyncError("the sealed file became shorter while it was sent")
        throttle.wait(len(chunk), stop)
        remote.write(chunk)
        done += len(chunk)
        unflushed += len(chunk)
        if unflushed >= FLUSH_EVERY:
            remote.flush_to_disk()
            progress.sent(done, 0)
            unflushed = 0
    remote.flush_to_disk()
    progress.sent(done, 0)
    return done >= size
