"""Chooses the camera and microphone backends named in the config (lazily imported)."""

from __future__ import annotations

import time

from appliance.capture.sources import Camera, Microphone
from appliance.capture.sync_marker import SyncMarker
from appliance.config import Config


def make_camera(config: Config, marker: SyncMarker) -> Camera:
    """The configured camera; picamera2 is imported only if it is the one chosen."""
    c = config.camera
    width, height = c.size
    common = dict(width=width, height=height, fps=c.fps, bitrate=c.bitrate,
                  keyframe_interval_s=c.keyframe_interval_s, preview_fps=c.preview_fps,
                  preview_width=c.preview_width)
    if c.backend == "synthetic":
        from appliance.capture.camera_synthetic import SyntheticCamera
        return SyntheticCamera(marker=marker, **common)  # type: ignore[arg-type]
    from appliance.capture.camera_picamera2 import Picamera2Camera
    return Picamera2Camera(**common)  # type: ignore[arg-type]


def make_microphone(config: Config, marker: SyncMarker) -> Microphone | None:
    """The configured microphone, or None for a video-only box."""
    m = config.microphone
    if m.backend == "none":
        return None
    if m.backend == "synthetic":
        from appliance.capture.mic_synthetic import SyntheticMicrophone
        return SyntheticMicrophone(sample_rate=m.sample_rate, block_ms=m.block_ms,
                                   marker=marker, drift_ppm=m.synthetic_drift_ppm)
    from appliance.capture.mic_sounddevice import SoundDeviceMicrophone
    return SoundDeviceMicrophone(device=m.device, sample_rate=m.sample_rate,
                                 block_ms=m.block_ms, stall_timeout_s=m.stall_timeout_s)


def new_marker() -> SyncMarker:
    """A sync marker whose epoch is now: shared by the synthetic camera and mic."""
    return SyncMarker(time.monotonic_ns())
