"""The data directory's layout: the one place that knows where everything lives.

    <root>/catalog.sqlite3          the catalog (with its -wal and -shm)
    <root>/capture.sock             the capture daemon's control socket (default)
    <root>/.ballast                 space kept free for the catalog when the disk fills
    <root>/recordings/<id>/         one recording: recording.mp4, meta.json, .lock,
                                    the raw journal while recording, and its
                                    clips/, stills/ and assets/
    <root>/recordings/.import-<id>/ an import being staged (becomes <id>/ in one rename)
    <root>/films/                   review films (they join clips of several recordings)
    <root>/outbox/                  files sealed (age) for the office, until verified there
    <root>/keys/                    the box's SSH key and the office's host key (sync)
    <root>/sync.lock                held by the one running `vigbox sync`
    <root>/clock-offset.json        a simulated box's clock (the demo): its offset

The catalog stores paths relative to the root, so the whole directory can be
moved or restored; `relative` and `absolute` convert, and refuse any path that
would leave the root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import CatalogError

FILM_NAME = "recording.mp4"
META_NAME = "meta.json"
LOCK_NAME = ".lock"
STAGING_PREFIX = ".import-"
# Ids the box makes itself (recordings, clips, stills, films): nothing that can
# name a parent directory or a hidden file.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_id(kind: str, item_id: str) -> str:
    """`item_id` if it is safe to use in a path, else CatalogError."""
    if not SAFE_ID.fullmatch(item_id):
        raise CatalogError(f"{kind} id {item_id!r} is not a valid id")
    return item_id


@dataclass(frozen=True)
class Layout:
    """Paths under one data root."""

    root: Path
    socket_override: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser().absolute())

    # -- top level --------------------------------------------------------------------

    @property
    def catalog_db(self) -> Path:
        """The SQLite catalog."""
        return self.root / "catalog.sqlite3"

    @property
    def socket(self) -> Path:
        """The capture daemon's control socket."""
        return self.socket_override or self.root / "capture.sock"

    @property
    def ballast(self) -> Path:
        """Reserved space, released when the disk fills so the catalog can still commit."""
        return self.root / ".ballast"

    @property
    def recordings_dir(self) -> Path:
        """Where every recording's folder lives."""
        return self.root / "recordings"

    @property
    def outbox(self) -> Path:
        """Sealed files waiting to reach the office."""
        return self.root / "outbox"

    @property
    def keys_dir(self) -> Path:
        """The box's SSH key and the office's known host key."""
        return self.root / "keys"

    @property
    def sync_lock(self) -> Path:
        """Held by the one sync run allowed at a time."""
        return self.root / "sync.lock"

    @property
    def clock_offset(self) -> Path:
        """A simulated box's clock: how far it is from this machine's (appliance.wall_clock)."""
        return self.root / "clock-offset.json"

    @property
    def films_dir(self) -> Path:
        """Review films."""
        return self.root / "films"

    # -- one recording ----------------------------------------------------------------

    def recording_dir(self, rec_id: str) -> Path:
        """The folder of one recording."""
        return self.recordings_dir / check_id("recording", rec_id)

    def recording_film(self, rec_id: str) -> Path:
        """The playable MP4 of a recording."""
        return self.recording_dir(rec_id) / FILM_NAME

    def clips_dir(self, rec_id: str) -> Path:
        """Clips cut from a recording."""
        return self.recording_dir(rec_id) / "clips"

    def stills_dir(self, rec_id: str) -> Path:
        """Stills taken from a recording."""
        return self.recording_dir(rec_id) / "stills"

    def assets_dir(self, rec_id: str) -> Path:
        """Review assets of a recording (poster, sprite, VTT, waveform)."""
        return self.recording_dir(rec_id) / "assets"

    def clip_file(self, rec_id: str, clip_id: str) -> Path:
        """The MP4 of one clip."""
        return self.clips_dir(rec_id) / f"{check_id('clip', clip_id)}.mp4"

    def still_file(self, rec_id: str, still_id: str) -> Path:
        """The JPEG of one still."""
        return self.stills_dir(rec_id) / f"{check_id('still', still_id)}.jpg"

    def film_file(self, film_id: str) -> Path:
        """The MP4 of one review film."""
        return self.films_dir / f"{check_id('film', film_id)}.mp4"

    def staging_dir(self, rec_id: str) -> Path:
        """The hidden folder an import is made in before it becomes a recording."""
        return self.recordings_dir / f"{STAGING_PREFIX}{check_id('recording', rec_id)}"

    @staticmethod
    def is_staging(folder: Path) -> bool:
        """True for an import's staging folder."""
        return folder.name.startswith(STAGING_PREFIX)

    # -- catalog paths ----------------------------------------------------------------

    def relative(self, path: Path) -> str:
        """A path as the catalog stores it: relative to the root."""
        try:
            return str(Path(path).resolve().relative_to(self.root.resolve()))
        except ValueError:
            raise CatalogError(f"{path} is outside the data dir {self.root}") from None

    def absolute(self, stored: str) -> Path:
        """A path read from the catalog, made absolute; never outside the root."""
        path = (self.root / stored)
        if ".." in Path(stored).parts or Path(stored).is_absolute():
            raise CatalogError(f"the catalog holds a path outside the data dir: {stored!r}")
        return path
