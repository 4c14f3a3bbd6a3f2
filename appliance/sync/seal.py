"""Sealing a file for the office: age-encrypted once, streaming (bounded memory), into
the outbox, with the sha256 of both the plaintext and the exact ciphertext sent.

age picks a fresh file key for every encryption, so the same file sealed twice gives
different bytes: a file is sealed once, and a resumed upload sends those same bytes.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
from pyrage import x25519

from appliance.errors import ConfigError, SyncError
from appliance.fsutil import atomic_output


@dataclass(frozen=True)
class Sealed:
    """What sealing made: sizes and sha256 of the plaintext and of the ciphertext."""

    plain_size: int
    plain_sha256: str
    size: int
    sha256: str


def recipients_of(keys: list[str]) -> list[Any]:
    """The office's age public keys, parsed; ConfigError names a bad one."""
    out = []
    for key in keys:
        try:
            out.append(x25519.Recipient.from_str(key))
        except Exception:  # noqa: BLE001 - pyrage raises its own types for a bad key
            raise ConfigError(f"'sync.recipients': {key!r} is not an age public key") from None
    if not out:
        raise ConfigError("'sync.recipients' is empty: add the office's age public key")
    return out


class HashingReader(io.RawIOBase):
    """Reads a file and hashes what was read."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n: int = self._f.readinto(buffer)
        if n:
            self.sha.update(memoryview(buffer)[:n])
            self.size += n
        return n


class HashingWriter(io.RawIOBase):
    """Writes to a file and hashes what was written."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sha.update(data)
        self.size += len(data)
        written: int = self._f.write(data)
        return written


def seal(src: Path, out: Path, recipients: list[Any]) -> Sealed:
    """Encrypt `src` to the recipients into `out` (atomically: a temp file, fsync, rename)."""
    with src.open("rb") as plain, atomic_output(out) as sealed:
        reader, writer = HashingReader(plain), HashingWriter(sealed)
        try:
            pyrage.encrypt_io(reader, writer, recipients)
        except pyrage.EncryptError as e:
            raise SyncError(f"could not seal {src.name}: {e}") from None
    return Sealed(reader.size, reader.sha.hexdigest(), writer.size, writer.sha.hexdigest())


def sha256_of(path: Path, *, limit: int | None = None) -> str:
    """The sha256 of a file (or of its first `limit` bytes)."""
    sha = hashlib.sha256()
    left = limit
    with path.open("rb") as f:
        while left is None or left > 0:
            chunk = f.read(1 << 20 if left is None else min(1 << 20, left))
            if not chunk:
                break
            sha.update(chunk)
            if left is not None:
                left -= len(chunk)
    return sha.hexdigest()
