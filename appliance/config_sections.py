"""The settings, table by table: each field with its default, description and limits
(`appliance.config` loads and checks them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_NAME = 40


def _setting(default: Any, help: str, *, choices: tuple[Any, ...] | None = None,
             min: float | None = None, max: float | None = None,
             max_len: int | None = None) -> Any:
    """A config field with its description and limits kept beside it."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "max_len": max_len}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class CameraConfig:
    """Which camera records, and how its H.264 stream is made."""

    backend: str = _setting("picamera2", "camera source", choices=("picamera2", "synthetic"))
    resolution: str = _setting("720p", "frame size", choices=("720p", "1080p"))
    fps: int = _setting(30, "frames per second", min=10, max=60)
    bitrate: int = _setting(6_000_000, "H.264 bitrate in bit/s", min=500_000, max=20_000_000)
    keyframe_interval_s: float = _setting(1.0, "seconds between keyframes", min=0.2, max=5.0)
    preview_fps: float = _setting(4.0, "live preview pictures per second at most (only made "
                                  "while the tablet shows them)", min=0.5, max=10.0)
    preview_width: int = _setting(640, "live preview width; its height keeps the aspect ratio",
                                  min=160, max=640)

    @property
    def size(self) -> tuple[int, int]:
        """Frame width and height in pixels."""
        return (1920, 1080) if self.resolution == "1080p" else (1280, 720)


@dataclass(frozen=True)
class MicrophoneConfig:
    """Which microphone records sound, if any."""

    backend: str = _setting("sounddevice", "microphone source",
                            choices=("sounddevice", "synthetic", "none"))
    device: str = _setting("", "part of the input device's name (sounddevice); empty = default")
    sample_rate: int = _setting(48_000, "samples per second", choices=(44_100, 48_000))
    block_ms: int = _setting(20, "audio block length in milliseconds", min=5, max=200)
    stall_timeout_s: float = _setting(0.5, "no audio for this long means the mic failed",
                                      min=0.1, max=10.0)
    synthetic_drift_ppm: float = _setting(
        0.0, "synthetic mic only: how far its clock runs off the camera's", min=-1000, max=1000)


@dataclass(frozen=True)
class GpioConfig:
    """The one button and the status LED."""

    backend: str = _setting("gpiozero", "pin access", choices=("gpiozero", "mock"))
    button_pin: int = _setting(17, "BCM pin of the button (to ground)", min=0, max=27)
    led_pin: int = _setting(27, "BCM pin of the status LED", min=0, max=27)
    hold_stop_s: float = _setting(1.5, "hold this long while recording to stop", min=0.1, max=10)
    hold_shutdown_s: float = _setting(5.0, "hold this long while idle to shut down",
                                      min=0.5, max=30)
    bounce_time_s: float = _setting(0.03, "ignore contact bounce shorter than this", min=0, max=0.5)


@dataclass(frozen=True)
class RecordingConfig:
    """Limits and safety margins for one recording."""

    max_seconds: int = _setting(600, "a recording stops by itself after this long",
                                min=1, max=7200)
    warn_before_end_s: int = _setting(60, "LED warns this long before the limit", min=0, max=600)
    reserve_mb: int = _setting(512, "disk space always left free", min=0, max=1_000_000)
    low_disk_mb: int = _setting(1024, "LED warns when free space falls below this",
                                min=0, max=1_000_000)
    fsync_interval_s: float = _setting(1.0, "flush recorded data to disk this often",
                                       min=0.1, max=2.0)


@dataclass(frozen=True)
class DaemonConfig:
    """The capture daemon's control socket and the box's shutdown."""

    socket_path: str = _setting("", "control socket; empty = capture.sock in the data dir")
    shutdown_command: list[str] = _setting(["systemctl", "poweroff"],
                                           "argv run for the safe shutdown gesture")


@dataclass(frozen=True)
class EncodeConfig:
    """Clips, stills and review films made on the box."""

    max_clip_s: float = _setting(120.0, "longest clip allowed", min=1, max=1800)
    max_handles_s: float = _setting(5.0, "longest lead-in / lead-out allowed", min=0, max=30)
    crf: int = _setting(18, "quality of re-encoded clips (lower is better)", min=10, max=35)
    preset: str = _setting("veryfast", "x264 speed preset for clips",
                           choices=("ultrafast", "superfast", "veryfast", "faster", "fast",
                                    "medium"))
    nice: int = _setting(10, "CPU niceness of encoding (capture always comes first)",
                         min=0, max=19)
    pre_roll_s: float = _setting(8.0, "a marked moment's clip starts this long before it",
                                 min=0, max=60)
    post_roll_s: float = _setting(2.0, "a marked moment's clip ends this long after it",
                                  min=0, max=60)
    font: str = _setting("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                         "font for captions and title cards (from fonts-dejavu-core)")


@dataclass(frozen=True)
class WebConfig:
    """The tablet UI (`vigbox web`)."""

    host: str = _setting("0.0.0.0", "address to listen on (the box's own Wi-Fi)")
    port: int = _setting(8080, "port to listen on", min=1, max=65535)
    threads: int = _setting(16, "server threads (each video being watched holds one)",
                            min=4, max=64)
    idle_timeout_min: float = _setting(30.0, "a tablet left idle this long must log in again",
                                       min=1, max=24 * 60)
    max_upload_mb: int = _setting(4096, "largest video a tablet may upload", min=1,
                                  max=64 * 1024)
    tls_cert: str = _setting("", "certificate for --tls; empty = one made on the box")
    tls_key: str = _setting("", "its private key; empty = one made on the box")
    downloads_allowed: bool = _setting(False, "guiders may download clips, stills and review "
                                       "films to the tablet (each download is audited)")


@dataclass(frozen=True)
class SyncConfig:
    """Sending clips, stills and manifests to the office, encrypted (`vigbox sync`)."""

    destination: str = _setting("", "the office store: sftp://user@host:port/path, "
                                "s3://bucket/prefix or file:///path; empty = no sync")
    recipients: list[str] = _setting([], "the office's age public keys (age1...): only they "
                                     "can decrypt what the box sends")
    identity: str = _setting("", "the box's SSH key for SFTP; empty = keys/device_ed25519 "
                             "in the data dir (`vigbox keys init` makes it)")
    known_hosts: str = _setting("", "OpenSSH known_hosts with the office's host key; empty = "
                                "keys/known_hosts in the data dir")
    device_id: str = _setting("", "this box's name at the office; empty = one made once "
                              "and kept in the data dir", max_len=64)
    send_recordings: bool = _setting(False, "send whole recordings too, not only clips, "
                                     "stills and review films")
    budget_s: float = _setting(600.0, "one run stops starting new files after this long",
                               min=10, max=6 * 3600)
    bandwidth_kbps: int = _setting(0, "upload cap in kilobytes a second; 0 = none",
                                   min=0, max=1_000_000)
    retry_first_s: float = _setting(60.0, "wait after a network failure, doubled each time",
                                    min=1, max=3600)
    retry_max_s: float = _setting(3600.0, "longest wait between tries", min=10, max=86400)
    # A VIG intervention runs three or four cycles over about three months, and its last
    # shared review may show clips from the first: keep them that long by default.
    keep_days_after_sync: float = _setting(90.0, "local clips, stills and review films are "
                                           "deleted this long after the office copy is "
                                           "verified", min=0, max=3650)
    raw_keep_days: float = _setting(60.0, "recordings of a closed case are deleted after this "
                                    "many days (once anything due is at the office)",
                                    min=1, max=3650)
    part_mb: int = _setting(8, "S3 multipart part size in MiB", min=5, max=512)
    s3_endpoint: str = _setting("", "S3 endpoint URL for non-AWS stores; empty = AWS")
    s3_region: str = _setting("", "S3 region; empty = the SDK's default")
    s3_access_key: str = _setting("", "S3 access key id; empty = the SDK's default chain")
    s3_secret_key_file: str = _setting("", "file holding the S3 secret key (readable by the "
                                       "sync service only)")


@dataclass(frozen=True)
class WifiConfig:
    """[wifi]: the box's own access point for the tablet (`vigbox wifi setup`)."""

    interface: str = _setting("wlan0", "the Wi-Fi interface that becomes the access point")
    ssid: str = _setting("", "network name; empty = vigbox- and the box's name", max_len=32)
    address: str = _setting("10.42.0.1/24", "the box's fixed address on its network; the "
                            "tablet finds the UI at it")
    band: str = _setting("bg", "2.4 GHz (bg: every tablet) or 5 GHz (a)", choices=("bg", "a"))
    channel: int = _setting(0, "radio channel; 0 = chosen by NetworkManager", min=0, max=165)
    country: str = _setting("", "two-letter Wi-Fi country (regulatory domain), e.g. GB; "
                            "empty = as the system has it", max_len=2)


@dataclass(frozen=True)
class ClockConfig:
    """[clock]: setting the box's clock from the tablet's (a Pi has no real-time clock)."""

    backend: str = _setting("timedated", "how the clock is set: systemd-timedated, or "
                            "simulated (the demo: an offset kept in the data dir)",
                            choices=("timedated", "simulated"))
    max_skew_s: float = _setting(60.0, "the tablet offers to set the box's clock when they "
                                 "differ by more than this", min=5, max=86400)
