"""One recording from the button press to a finalized, catalogued MP4.

Sources deliver on their own threads and only queue into the journal; one
supervisor thread owns every decision (limit reached, disk nearly full, a source
failed, stop requested) so stopping never races and never runs on a source thread.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from appliance.capture.finalize import FinalizeResult, finalize
from appliance.capture.journal import Journal, remove_journal
from appliance.capture.live_audio import LiveAudioEncoder
from appliance.capture.preflight import (
    BALLAST_MB,
    FINALIZE_ROOM_MB,
    MB,
    check_filming_consent,
    preflight,
)
from appliance.capture.sources import AudioChunk, Camera, Microphone, VideoFrame
from appliance.catalog import (
    Catalog,
    MomentSource,
    Origin,
    Recording,
    RecordingStatus,
    new_recording_id,
    utc_now,
)
from appliance.config import Config
from appliance.errors import ApplianceError, BusyError, CaptureError, CatalogError
from appliance.fsutil import (
    atomic_write_json,
    ensure_ballast,
    free_bytes,
    lock_directory,
    release_ballast,
)
from appliance.layout import META_NAME
from appliance.wall_clock import WallClock, box_clock

log = logging.getLogger(__name__)
CAMERA_STALL_S = 2.0     # no frame for this long means the camera failed
TICK_S = 0.1
COMMIT_ATTEMPTS = 3  # a finished film is only declared once the catalog says so
ACTOR = "capture"


class Event(enum.Enum):
    """What a session tells its owner (the daemon drives the LED from these)."""

    RECORDING = "recording"
    WARNING = "warning"
    FINALIZING = "finalizing"
    READY = "ready"
    FAILED = "failed"


class Session:
    """A recording in progress; `start()`, then `mark()` any time, then `stop()` or `wait()`."""

    def __init__(self, *, catalog: Catalog, config: Config, camera: Camera,
                 mic: Microphone | None, case: str | None = None,
                 clock: Callable[[], int] = time.monotonic_ns, wall_clock: WallClock | None = None,
                 on_event: Callable[[Event], None] | None = None,
                 actor: str = ACTOR, kind: str = "interaction") -> None:
        self.catalog, self.config = catalog, config
        self.actor = actor   # who started it: the box's button, or an account on the tablet
        self.camera, self.mic, self.case = camera, mic, case
        self.kind = kind     # "interaction" at home, or "review": a filmed shared review
        self._clock = clock   # CLOCK_MONOTONIC: frames, sound, limits
        self._wall_clock = wall_clock or box_clock(config.clock.backend, catalog.layout)
        self._on_event = on_event or (lambda e: None)
        self.id = ""
        self.directory = Path()
        self.pressed_at_ns: int | None = None
        self.first_pts_ns: int | None = None
        self.problems: list[str] = []
        self._journal: Journal | None = None
        self._live_audio: LiveAudioEncoder | None = None
        self._lock_handle: IO[bytes] | None = None
        self._last_frame_at = 0
        self._stop_reason: str | None = None
        self._camera_failed: str | None = None
        self._mic_failed: str | None = None
        self._writer_failed: str | None = None
        self._drops: list[str] = []   # frames the journal could not take, said once each
        self._warned = False
        self._wake = threading.Event()
        self._done = threading.Event()
        self._result: Recording | None = None
        self._supervisor = threading.Thread(target=self._supervise, name="session", daemon=True)

    # -- owner's side ----------------------------------------------------------------

    def start(self, pressed_at_ns: int | None = None) -> Recording:
        """Preflight, create the recording and start the sources."""
        self.pressed_at_ns = pressed_at_ns or self._clock()
        layout = self.catalog.layout
        preflight(self.config, layout, self.camera, self.mic)
        if self.case is not None:
            check_filming_consent(self.catalog, self.case, self.kind)
        self.id = new_recording_id(started := self._wall_clock())   # the box's date, as set
        self.directory = layout.recording_dir(self.id)
        # The row comes first: a crash after it leaves a row that recovery can close.
        rec = self.catalog.recordings.create(
            self.id, case=self.case, started_at=utc_now(started), origin=Origin.CAPTURE,
            actor=self.actor, width=self.camera.width, height=self.camera.height, kind=self.kind,
            fps=float(self.camera.fps), audio="none" if self.mic is None else "ok")
        ensure_ballast(self._ballast, BALLAST_MB * MB)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_handle = lock_directory(self.directory)
        atomic_write_json(self.directory / META_NAME, self._meta())
        self._journal = Journal(self.directory, fsync_interval_s=self.config.recording
                                .fsync_interval_s, on_error=self._writer_error,
                                on_drop=self._drops.append)
        self._journal.open()
        if self.mic is not None:
            self._live_audio = LiveAudioEncoder(self.directory, self._journal,
                                                fps=self.camera.fps,
                                                sample_rate=self._sample_rate())
            try:
                self._live_audio.start()
            except ApplianceError as e:  # finalize then encodes the audio at the end
                log.warning("live audio encoding unavailable: %s", e)
                self._live_audio = None
        self._last_frame_at = self._clock()
        try:
            if self.mic is not None:
                self.mic.start(self._on_chunk, self._mic_error)
            self.camera.start(self._on_frame, self._camera_error)
        except ApplianceError as e:
            self._camera_failed = f"could not start: {e}"
        self._supervisor.start()
        self._on_event(Event.RECORDING)
        log.info("recording %s started", self.id)
        return rec

    def mark(self, at_ns: int | None = None, *, source: str = "control",
             actor: str = ACTOR) -> dict[str, Any]:
        """Store a moment at `at_ns` (default now) as seconds into the recording."""
        if not self.id or self._done.is_set():
            raise BusyError("no recording in progress to mark")
        at_ns = at_ns or self._clock()
        start = self.first_pts_ns or self.pressed_at_ns or at_ns
        at_s = max(0.0, (at_ns - start) / 1e9)
        moment = self.catalog.moments.add(self.id, at_s, source=MomentSource(source),
                                          actor=actor)
        log.info("moment %d marked at %.2f s", moment.id, at_s)
        return {"id": moment.id, "recording_id": self.id, "at_s": moment.at_s}

    def request_stop(self, reason: str = "stopped") -> None:
        """Ask the session to end and return at once (safe from any thread)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._wake.set()

    def stop(self, reason: str = "stopped", timeout: float = 900) -> Recording:
        """Ask the session to end, wait for finalizing, return the final recording."""
        self.request_stop(reason)
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> Recording:
        """Wait until the session has ended by itself or by stop(); the final recording."""
        if not self._done.wait(timeout):
            raise CaptureError(f"recording {self.id} did not finish within {timeout} s")
        assert self._result is not None
        return self._result

    @property
    def camera_failed(self) -> bool:
        """True if the camera failed during this session (the daemon then reopens it)."""
        return self._camera_failed is not None

    @property
    def healthy(self) -> bool:
        """False if the supervisor or the disk writer died (the daemon's watchdog asks)."""
        if not self.running:
            return True
        return self._supervisor.is_alive() and (self._journal is None or self._journal.alive)

    @property
    def running(self) -> bool:
        """True from start() until finalizing has finished."""
        return bool(self.id) and not self._done.is_set()

    def status(self) -> dict[str, Any]:
        """A snapshot for `vigbox ctl status`."""
        elapsed = 0.0
        if self.first_pts_ns is not None:
            elapsed = (self._clock() - self.first_pts_ns) / 1e9
        j = self._journal
        return {"id": self.id, "elapsed_s": round(elapsed, 1),
                "frames": j.frames_written if j else 0,
                "audio": self._audio_state(), "problems": list(self.problems)}

    # -- source threads: record and return ----------------------------------------------

    def _on_frame(self, frame: VideoFrame) -> None:
        if self.first_pts_ns is None:
            self.first_pts_ns = frame.pts_ns
        self._last_frame_at = self._clock()
        assert self._journal is not None
        self._journal.add(frame)

    def _on_chunk(self, chunk: AudioChunk) -> None:
        assert self._journal is not None
        pressed = self.pressed_at_ns or 0
        if self.first_pts_ns is not None or chunk.adc_ns >= pressed - 10**9:
            self._journal.add(chunk)

    def _camera_error(self, reason: str) -> None:
        self._camera_failed = reason
        self._wake.set()

    def _mic_error(self, reason: str) -> None:
        self._mic_failed = reason
        self._wake.set()

    def _writer_error(self, reason: str) -> None:
        self._writer_failed = reason
        self._wake.set()

    # -- supervisor ----------------------------------------------------------------------

    @property
    def _ballast(self) -> Path:
        return self.catalog.layout.ballast

    def _supervise(self) -> None:
        try:
            reason = self._watch()
            self._result = self._end(reason)
        except Exception as e:  # the session must always end and report, whatever broke
            log.exception("recording %s: supervisor failed", self.id)
            try:
                self._result = self._fail(f"internal error: {e}")
            except Exception:  # noqa: BLE001 - not even the catalog can be written
                log.exception("recording %s: cannot record the failure in the catalog; "
                              "it will be recovered at the next start", self.id)
                self._result = self._unrecorded_failure()
        finally:
            self._release()
            self._done.set()

    def _watch(self) -> str:
        limit_s = self.config.recording.max_seconds
        warn_s = limit_s - self.config.recording.warn_before_end_s
        next_disk_check = 0.0
        while True:
            self._wake.wait(TICK_S)
            self._wake.clear()
            now = self._clock()
            self._note_drops()
            if self._mic_failed and self.mic is not None:
                self._note_mic_failure()
            if self._stop_reason:
                return self._stop_reason
            if self._writer_failed:
                return self._problem(f"stopped early: {self._writer_failed}")
            if self._camera_failed:
                return self._problem(f"camera failed: {self._camera_failed}")
            if (now - self._last_frame_at) / 1e9 > CAMERA_STALL_S:
                self._camera_failed = f"no picture for {CAMERA_STALL_S:g} s"
                return self._problem(f"camera failed: {self._camera_failed}")
            elapsed = (now - self.first_pts_ns) / 1e9 if self.first_pts_ns else 0.0
            if elapsed >= limit_s:
                return f"reached the {limit_s} s limit"
            if time.monotonic() >= next_disk_check:
                next_disk_check = time.monotonic() + 1.0
                if (why := self._disk_trouble()) is not None:
                    return self._problem(why)
            if not self._warned and elapsed >= warn_s > 0:
                self._warned = True
                self._on_event(Event.WARNING)

    def _disk_trouble(self) -> str | None:
        assert self._journal is not None
        free = free_bytes(self.directory)
        if free < self._journal.bytes_written + FINALIZE_ROOM_MB * MB:
            return "stopped early: the disk is nearly full"
        if not self._warned and free < self.config.recording.low_disk_mb * MB:
            self._warned = True
            self._on_event(Event.WARNING)
        return None

    def _note_mic_failure(self) -> None:
        at = self.status()["elapsed_s"]
        self._problem(f"microphone failed at {at:.1f} s ({self._mic_failed}); "
                      "the rest has no sound")
        self._on_event(Event.WARNING)
        mic, self.mic = self.mic, None
        try:
            assert mic is not None
            mic.stop()
        except ApplianceError as e:
            log.warning("microphone did not stop cleanly: %s", e)

    def _note_drops(self) -> None:
        while self._drops:
            self._problem(self._drops.pop(0))

    def _problem(self, text: str) -> str:
        log.warning("recording %s: %s", self.id, text)
        self.problems.append(text)
        return text

    def _end(self, reason: str) -> Recording:
        log.info("recording %s ending: %s", self.id, reason)
        self._on_event(Event.FINALIZING)
        self._stop_sources()
        assert self._journal is not None
        self._journal.close()
        self._note_drops()
        if self._writer_failed or free_bytes(self.directory) < 2 * BALLAST_MB * MB:
            # The disk is (nearly) full: free the ballast so the catalog can still commit.
            if release_ballast(self._ballast):
                log.warning("disk full: released the %d MB ballast", BALLAST_MB)
        self.catalog.recordings.update(self.id, status=RecordingStatus.FINALIZING,
                                       problems=self.problems, actor=ACTOR)
        live = self._live_audio.finish() if self._live_audio is not None else None
        film = self.catalog.layout.recording_film(self.id)
        try:
            try:
                result = finalize(self.directory, film, fps=self.camera.fps,
                                  sample_rate=self._sample_rate(),
                                  mic_failed=self._mic_failed is not None, live_audio=live)
            except ApplianceError as e:
                if live is None:
                    raise
                log.warning("finalizing with the live audio failed (%s); encoding it again", e)
                result = finalize(self.directory, film, fps=self.camera.fps,
                                  sample_rate=self._sample_rate(),
                                  mic_failed=self._mic_failed is not None)
        except ApplianceError as e:
            return self._fail(f"could not finalize ({e}); the raw recording is kept, "
                              "run `vigbox recover` once there is room")
        # The journal goes only once the catalog knows the film is ready: if that write
        # fails, recovery finds the journal (or the whole MP4) and finishes the job.
        rec = self._commit_ready(result)
        remove_journal(self.directory)
        self._on_event(Event.READY)
        log.info("recording %s ready: %.1f s, %d frames, %d dropped", self.id,
                 result.duration_s, result.frames, result.dropped_frames)
        return rec

    def _commit_ready(self, result: FinalizeResult) -> Recording:
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                return self.catalog.recordings.update(
                    self.id, status=RecordingStatus.READY, path=result.path,
                    duration_s=result.duration_s, video_frames=result.frames,
                    dropped_frames=result.dropped_frames, audio=result.audio,
                    problems=self.problems, actor=ACTOR)
            except CatalogError as e:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                log.warning("recording %s: the catalog refused 'ready' (%s); trying again",
                            self.id, e)
                time.sleep(0.5 * attempt)
        raise AssertionError("unreachable")

    def _fail(self, text: str) -> Recording:
        self._problem(text)
        self._on_event(Event.FAILED)
        return self.catalog.recordings.update(self.id, status=RecordingStatus.FAILED,
                                              problems=self.problems, actor=ACTOR)

    def _unrecorded_failure(self) -> Recording:
        self._on_event(Event.FAILED)
        try:
            rec = self.catalog.recordings.get(self.id)
        except Exception:  # noqa: BLE001 - the catalog is unusable; describe from memory
            rec = Recording(id=self.id, case=self.case, started_at="", duration_s=None,
                            status=RecordingStatus.RECORDING, origin=Origin.CAPTURE,
                            dir=self.directory, path=None, width=self.camera.width,
                            height=self.camera.height, fps=float(self.camera.fps),
                            video_frames=None, dropped_frames=None, audio=None, problems=[])
        return dataclasses.replace(rec, status=RecordingStatus.FAILED,
                                   problems=list(self.problems))

    def _stop_sources(self) -> None:
        for source in (self.camera, self.mic):
            if source is None:
                continue
            try:
                source.stop()
            except ApplianceError as e:
                self._problem(f"{source.name} did not stop cleanly: {e}")

    def _release(self) -> None:
        if self._live_audio is not None:
            self._live_audio.abort()
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def _audio_state(self) -> str:
        if self.mic is None and self._mic_failed is None:
            return "none"
        return "failed" if self._mic_failed else "ok"

    def _sample_rate(self) -> int:
        return self.config.microphone.sample_rate

    def _meta(self) -> dict[str, Any]:
        return {"id": self.id, "case": self.case, "fps": self.camera.fps,
                "width": self.camera.width, "height": self.camera.height,
                "sample_rate": self._sample_rate(), "camera": self.camera.name,
                "microphone": self.mic.name if self.mic else None}

