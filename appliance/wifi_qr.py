"""QR codes for the tablet: the standard Wi-Fi payload a camera app joins a network with,
and the UI's address; drawn in the terminal or saved as PNG or SVG (segno)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.errors import InputError
from appliance.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    import segno

QR_KINDS = {".png": "png", ".svg": "svg"}
_SPECIAL = '\\;,:"'   # escaped with a backslash inside a WIFI: field (backslash first)


def escape(value: str) -> str:
    """A value for one field of the Wi-Fi payload: `\\ ; , : "` each after a backslash."""
    for c in _SPECIAL:
        value = value.replace(c, "\\" + c)
    return value


def join_payload(ssid: str, psk: str) -> str:
    """What iOS and Android cameras read to join a WPA/WPA2 network."""
    return f"WIFI:T:WPA;S:{escape(ssid)};P:{escape(psk)};;"


def make(data: str) -> segno.QRCode:
    """A QR code of `data`, error correction M or better (segno raises it when free)."""
    import segno  # here: the services that import the payload never draw a code

    return segno.make_qr(data, error="m")


def terminal_text(data: str) -> str:
    """The QR code drawn with block characters, two rows a line, for a terminal."""
    out = io.StringIO()
    make(data).terminal(out=out, compact=True)
    return out.getvalue()


def check_qr_path(path: Path) -> str:
    """The image kind a --qr file's name asks for (InputError unless .png or .svg)."""
    kind = QR_KINDS.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{path}: the QR code file must end in .png or .svg")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent} is not a directory: the QR code cannot be saved "
                         "there")
    return kind


def save(data: str, path: Path) -> None:
    """Write the QR code as PNG or SVG, big enough to print, all at once; the file is
    readable by its owner only (mkstemp's 0600), as it holds the passphrase."""
    kind = check_qr_path(path)
    buf = io.BytesIO()
    make(data).save(buf, kind=kind, scale=10, border=4)
    atomic_write_bytes(path, buf.getvalue())
