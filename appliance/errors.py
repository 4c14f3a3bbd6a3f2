"""One error root for the appliance, with a base per subsystem.

Leaves also inherit the builtin they resemble, so callers may catch either.
Every message is meant for a person: it says what was wrong and what to do.
"""

from __future__ import annotations


class ApplianceError(Exception):
    """Root of every error the appliance raises on purpose."""


class ConfigError(ApplianceError, ValueError):
    """The configuration file or a setting in it is wrong."""


class InputError(ApplianceError, ValueError):
    """A command, request or file given to the appliance is not acceptable."""


class CatalogError(ApplianceError):
    """The catalog database could not do what was asked."""


class NotFoundError(CatalogError, LookupError):
    """A case, recording or moment that was asked for does not exist."""


class MediaError(ApplianceError):
    """ffmpeg or ffprobe failed, or a media file is unusable."""


class CaptureError(ApplianceError):
    """Base for the capture daemon: camera, microphone, GPIO, recording."""


class PreflightError(CaptureError):
    """A recording was refused before it started (disk, camera or mic missing)."""


class CameraError(CaptureError):
    """The camera is missing or failed."""


class MicrophoneError(CaptureError):
    """The microphone is missing or failed."""


class GpioError(CaptureError):
    """The button or LED could not be set up."""


class BusyError(CaptureError):
    """The request conflicts with the current state (e.g. start while recording)."""


class ControlError(CaptureError):
    """The capture daemon could not be reached, or refused or failed a command.

    `kind` says which, so a caller can answer as it should (a web view: 409 / 400 /
    503 / 500): "busy", "bad_request", "not_running" or "failed".
    """

    kind = "failed"


class DaemonBusyError(ControlError, BusyError):
    """The daemon refused: the command conflicts with what it is doing now."""

    kind = "busy"


class DaemonRequestError(ControlError, InputError):
    """The daemon refused the request itself (unknown command, bad argument, no consent)."""

    kind = "bad_request"


class DaemonNotRunningError(ControlError):
    """Nothing answers on the control socket: the capture service is not running."""

    kind = "not_running"


class DaemonFailedError(ControlError):
    """The daemon tried and failed (camera missing, disk full, an internal error)."""

    kind = "failed"


class ConsentError(InputError):
    """The case's consent on record does not cover what was asked."""


class NoConsentError(PreflightError, ConsentError):
    """A recording was refused: its case has no consent to filming on record."""


class EncodeError(ApplianceError):
    """Base for the encoder: clips, stills, films and their jobs."""


class SyncError(ApplianceError):
    """Base for the sync agent that sends clips to the office."""


class SyncNetworkError(SyncError, ConnectionError):
    """The office could not be reached or the link broke: try again later (with backoff)."""


class SyncStopError(SyncError):
    """A failure that retrying cannot fix (host key mismatch, refused key, full office
    disk, bad configuration): sync stops at once and says what to do."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind   # host_key, auth, disk_full, config


class SyncBusyError(SyncError):
    """Another sync run holds the lock."""


class SystemToolError(ApplianceError):
    """A tool of the operating system (nmcli, timedatectl) is missing or refused."""


class WebError(ApplianceError):
    """Base for the tablet UI: accounts, sessions and requests."""


class AuthError(WebError, PermissionError):
    """A login failed, or a request needs a login (or an administrator) it does not have."""


class LockedOutError(AuthError):
    """Too many failed logins: the account or the client must wait."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
