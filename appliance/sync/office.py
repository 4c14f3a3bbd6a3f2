"""The office side (`vigbox office decrypt SRC DEST --identity FILE`): decrypt what the
boxes sent, check every file against its recording's latest manifest, and report what is
missing, altered or not listed, and which cases were erased on a family's request.

It needs no catalog and no box: only the received folder and the office's age key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyrage
from pyrage import x25519

from appliance.errors import InputError, SyncError
from appliance.fsutil import atomic_output
from appliance.sync.seal import HashingWriter, sha256_of

MANIFEST = re.compile(r"^(manifest|erasure)-(\d+)\.json\.age$")


@dataclass
class Report:
    """What decrypting a received folder found."""

    decrypted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    erasures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every listed file arrived whole."""
        return not self.missing and not self.altered

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"ok": self.ok, "decrypted": self.decrypted, "missing": self.missing,
                "altered": self.altered, "unlisted": self.unlisted, "erasures": self.erasures}


def load_identities(path: Path) -> list[Any]:
    """The office's age secret keys from an identity file (as age-keygen writes it)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise InputError(f"cannot read the identity file {path}: {e.strerror}") from None
    keys = []
    for line in lines:
        line = line.strip()
        if line.startswith("AGE-SECRET-KEY-"):
            try:
                keys.append(x25519.Identity.from_str(line))
            except Exception:  # noqa: BLE001 - pyrage's own error types
                raise InputError(f"{path}: a line is not a valid age secret key") from None
    if not keys:
        raise InputError(f"{path} holds no age secret key (AGE-SECRET-KEY-...)")
    return keys


def decrypt_folder(src: Path, dest: Path, identities: list[Any]) -> Report:
    """Decrypt every recording folder under `src` into the same layout under `dest`."""
    if not src.is_dir():
        raise InputError(f"{src} is not a folder")
    report = Report()
    listed: set[Path] = set()
    folders = sorted({p.parent for p in src.rglob("*.json.age") if MANIFEST.match(p.name)})
    for folder in folders:
        latest = _latest(folder, "manifest")
        if latest is not None:
            doc = json.loads(_decrypt_bytes(latest, identities))
            listed.add(latest)
            listed |= {folder / n for n in _older(folder, "manifest", latest)}
            for entry in doc.get("files", []):
                listed.add(folder / entry["name"])
                _one_file(src, dest, folder, entry, identities, report)
        for notice in _all(folder, "erasure"):
            listed.add(notice)
            report.erasures.append(json.loads(_decrypt_bytes(notice, identities)))
    for path in sorted(src.rglob("*.age")):
        if path not in listed:
            report.unlisted.append(str(path.relative_to(src)))
    return report


def _one_file(src: Path, dest: Path, folder: Path, entry: dict[str, Any],
              identities: list[Any], report: Report) -> None:
    sealed = folder / entry["name"]
    rel = str(sealed.relative_to(src))
    if not sealed.is_file():
        report.missing.append(rel)
        return
    if sha256_of(sealed) != entry.get("sealed_sha256"):
        report.altered.append(rel)
        return
    out = dest / sealed.relative_to(src).with_suffix("")
    try:
        digest = _decrypt_to(sealed, out, identities)
    except SyncError:
        report.altered.append(rel)
        return
    if digest != entry.get("sha256"):
        out.unlink(missing_ok=True)
        report.altered.append(rel)
        return
    report.decrypted.append(str(out.relative_to(dest)))


def _versions(folder: Path, kind: str) -> list[tuple[int, Path]]:
    found = []
    for p in folder.iterdir():
        m = MANIFEST.match(p.name)
        if m and m.group(1) == kind:
            found.append((int(m.group(2)), p))
    return sorted(found)


def _latest(folder: Path, kind: str) -> Path | None:
    versions = _versions(folder, kind)
    return versions[-1][1] if versions else None


def _older(folder: Path, kind: str, latest: Path) -> list[str]:
    return [p.name for _, p in _versions(folder, kind) if p != latest]


def _all(folder: Path, kind: str) -> list[Path]:
    return [p for _, p in _versions(folder, kind)]


def _decrypt_bytes(path: Path, identities: list[Any]) -> bytes:
    try:
        data: bytes = pyrage.decrypt(path.read_bytes(), identities)
    except (pyrage.DecryptError, OSError) as e:
        raise SyncError(f"{path.name} cannot be decrypted with this key: {e}") from None
    return data


def _decrypt_to(sealed: Path, out: Path, identities: list[Any]) -> str:
    """Decrypt (streaming) into `out` atomically; the plaintext's sha256."""
    with sealed.open("rb") as f, atomic_output(out) as w:
        writer = HashingWriter(w)
        try:
            pyrage.decrypt_io(f, writer, identities)
        except (pyrage.DecryptError, OSError) as e:
            raise SyncError(f"{sealed.name}: {e}") from None
    return writer.sha.hexdigest()
