"""sftp://user@host:port/path with paramiko: the box logs in with its own ed25519 key and
accepts only the office host key pinned in known_hosts (never trusted on first use).

Writes are pipelined for speed on slow links; paramiko then drops a server's refusal of a
write (a full disk) without a word, so after each flush the `.part`'s size at the office
is checked against what was written, and a short file is explained from the office's free
space (statvfs@openssh.com).
"""

from __future__ import annotations

import errno
import socket
import struct
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paramiko
from paramiko.sftp import CMD_EXTENDED

from appliance.config import Config
from appliance.errors import SyncError, SyncNetworkError, SyncStopError
from appliance.layout import Layout
from appliance.sync.destination import FileStore, RemoteFile

TIMEOUT_S = 20.0
NETWORK = (OSError, EOFError, socket.timeout, paramiko.SSHException)


def key_files(config: Config, layout: Layout) -> tuple[Path, Path]:
    """The box's SSH key (sync.identity, else keys/device_ed25519 in the data dir) and the
    office's pinned host key (sync.known_hosts, else keys/known_hosts)."""
    sync = config.sync
    return (Path(sync.identity) if sync.identity else layout.keys_dir / "device_ed25519",
            Path(sync.known_hosts) if sync.known_hosts else layout.keys_dir / "known_hosts")


def _refused(e: BaseException) -> bool:
    """A status the SFTP server sent back (not a broken link)."""
    return isinstance(e, OSError) and not isinstance(e, (socket.timeout, ConnectionError))


def _words(e: BaseException) -> str:
    return str(e) or type(e).__name__


class _SftpPart(RemoteFile):
    def __init__(self, dest: SftpDestination, f: paramiko.SFTPFile, name: str,
                 offset: int) -> None:
        self._dest = dest
        self._f = f
        self._name = name
        self._written = offset

    def write(self, data: bytes) -> None:
        try:
            self._f.write(data)
        except NETWORK as e:
            raise self._dest.failure(e, self._name) from None
        self._written += len(data)

    def flush_to_disk(self) -> None:
        try:
            self._f.flush()
            self._drain()
            self._dest.fsync(self._f)
            there = self._f.stat().st_size
        except NETWORK as e:
            if _refused(e):   # the server said no to a write: a full disk, most often
                self._dest.check_room(self._name, self._written)
            raise self._dest.failure(e, self._name) from None
        if there is None or there < self._written:
            # A pipelined write the server refused: a full disk is the usual reason.
            self._dest.check_room(self._name, self._written - (there or 0))
            raise SyncNetworkError(f"the office kept {there} of {self._written} bytes of "
                                   f"{self._name}")

    def _drain(self) -> None:
        """Read the answer to every write still in flight, in order. paramiko only reads
        them once more than 100 are queued; any other request read first would take them
        off the wire and leave paramiko waiting for answers that never come."""
        pending = self._f._reqs
        while pending:
            self._dest.sftp._read_response(pending.popleft())

    def close(self) -> None:
        try:
            self._f.close()
        except NETWORK:
            pass  # a write refused or a link lost was reported by flush_to_disk


class SftpDestination(FileStore):
    """An office SFTP account (OpenSSH)."""

    def __init__(self, *, host: str, port: int, user: str, root: str, key: Path,
                 known_hosts: Path) -> None:
        self.host, self.port, self.user, self.root = host, port, user, root.rstrip("/") or "/"
        self.key = key
        self.known_hosts = known_hosts
        self.url = f"sftp://{user}@{host}:{port}{self.root}"
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    @classmethod
    def from_config(cls, config: Config, layout: Layout) -> SftpDestination:
        """The destination sync.destination names, with the box's key and known_hosts."""
        parts = urlsplit(config.sync.destination)
        if not parts.hostname or not parts.username:
            raise SyncStopError("'sync.destination' must be sftp://user@host[:port]/path",
                                kind="config")
        key, known = key_files(config, layout)
        return cls(host=parts.hostname, port=parts.port or 22, user=unquote(parts.username),
                   root=unquote(parts.path) or "/", key=key, known_hosts=known)

    # -- connecting -----------------------------------------------------------------------

    def connect(self) -> None:
        if not self.key.is_file():
            raise SyncStopError(f"the box has no SSH key ({self.key}): run `vigbox keys init` "
                                "and give its public key to the office", kind="config")
        host_id = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(str(self.known_hosts))
        except OSError:
            raise SyncStopError(f"the office's host key is not pinned ({self.known_hosts} is "
                                "missing): add the office's key line to it; the box never "
                                "trusts a host key on first use", kind="host_key") from None
        if not client.get_host_keys().lookup(host_id):
            client.close()
            raise SyncStopError(f"{host_id} has no pinned host key in {self.known_hosts}: add "
                                "the office's key line; the box never trusts a host key on "
                                "first use", kind="host_key")
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            pkey = paramiko.PKey.from_path(self.key)
            client.connect(self.host, self.port, username=self.user, pkey=pkey,
                           allow_agent=False, look_for_keys=False, timeout=TIMEOUT_S,
                           banner_timeout=TIMEOUT_S, auth_timeout=TIMEOUT_S)
            transport = client.get_transport()
            assert transport is not None
            transport.set_keepalive(15)
            sftp = client.open_sftp()
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(60)   # a stalled link is a failure, not a hang
        except paramiko.BadHostKeyException:
            client.close()
            raise SyncStopError(f"the office's host key does not match the one pinned in "
                                f"{self.known_hosts}: the connection may be intercepted; "
                                "nothing was sent. If the office changed its key, pin the "
                                "new one", kind="host_key") from None
        except paramiko.AuthenticationException:
            client.close()
            raise SyncStopError(f"the office refused the box's key ({self.user}@{self.host}): "
                                "add the line `vigbox keys init` prints to the account's "
                                "authorized_keys", kind="auth") from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            client.close()
            raise SyncNetworkError(f"cannot reach the office at {self.host}:{self.port} "
                                   f"({_words(e)})") from None
        self._client, self._sftp = client, sftp

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = self._sftp = None

    @property
    def sftp(self) -> paramiko.SFTPClient:
        """The open SFTP session."""
        if self._sftp is None:
            raise SyncNetworkError("not connected to the office")
        return self._sftp

    # -- files ----------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        if name.startswith("/") or ".." in name.split("/"):
            raise SyncError(f"{name!r} would leave the office folder")
        return f"{self.root}/{name}"

    def failure(self, e: BaseException, what: str) -> SyncError:
        """An SFTP error as sync sees it."""
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return SyncStopError(f"the office store is full ({what})", kind="disk_full")
        return SyncNetworkError(f"the link to the office failed while writing {what} "
                                f"({_words(e)})")

    def size_of(self, name: str) -> int | None:
        try:
            return self.sftp.stat(self._path(name)).st_size
        except FileNotFoundError:
            return None
        except NETWORK as e:
            raise self.failure(e, name) from None

    def open_part(self, name: str, offset: int) -> RemoteFile:
        path = self._path(name)
        try:
            self._mkdirs(path.rsplit("/", 1)[0])
            exists = self.size_of(name) is not None
            # OpenSSH ignores seeks on a file opened to append: open it for update.
            f = self.sftp.open(path, "r+" if exists else "w")
            if exists:
                f.truncate(offset)
            f.seek(offset)
            f.set_pipelined(True)
        except NETWORK as e:
            raise self.failure(e, name) from None
        return _SftpPart(self, f, name, offset)

    def _mkdirs(self, folder: str) -> None:
        done = ""
        for piece in folder.strip("/").split("/"):
            done += "/" + piece
            try:
                self.sftp.stat(done)
            except FileNotFoundError:
                self.sftp.mkdir(done)

    def publish(self, part: str, final: str) -> None:
        # OpenSSH's plain SFTP rename refuses to replace an existing file.
        try:
            self.sftp.rename(self._path(part), self._path(final))
        except NETWORK as e:
            if self.size_of(final) is not None:
                raise SyncError(f"{final} already exists at the office") from None
            raise self.failure(e, final) from None

    def remove(self, name: str) -> None:
        try:
            self.sftp.remove(self._path(name))
        except FileNotFoundError:
            pass
        except NETWORK as e:
            raise self.failure(e, name) from None

    def fsync(self, f: paramiko.SFTPFile) -> None:
        """Ask OpenSSH to flush the file to the office's disk (fsync@openssh.com)."""
        self.sftp._request(CMD_EXTENDED, "fsync@openssh.com", f.handle)

    def free_bytes(self) -> int | None:
        """Free space at the office (statvfs@openssh.com), None if the server cannot say."""
        try:
            _, msg = self.sftp._request(CMD_EXTENDED, "statvfs@openssh.com", self.root)
            values = struct.unpack(">11Q", msg.get_remainder()[:88])
        except (*NETWORK, struct.error):
            return None
        frsize, bavail = values[1], values[4]
        return int(frsize * bavail)

    def check_room(self, what: str, needed: int) -> None:
        """SyncStopError (disk_full) when the office has no room for `needed` bytes."""
        free = self.free_bytes()
        if free is not None and free < max(needed, 1):
            raise SyncStopError(f"the office store is full ({free} bytes free, {what} needs "
                                f"{needed} more): free space there, then sync again",
                                kind="disk_full")

    def describe(self) -> dict[str, Any]:
        return {"host": f"{self.host}:{self.port}", "host_key_pinned": self.known_hosts.is_file()}
