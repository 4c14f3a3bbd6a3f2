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


class ControlError(CaptureError):
    """The capture daemon's control socket could not be reached or refused a command."""


class BusyError(CaptureError):
    """The request conflicts with the current state (e.g. start while recording)."""


class EncodeError(ApplianceError):
    """Base for the encoder: clips, stills, films and their jobs."""


class SyncError(ApplianceError):
    """Base for the sync agent that sends clips to the office."""
