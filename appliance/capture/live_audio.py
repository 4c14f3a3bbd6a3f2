"""Encode the aligned audio to AAC while recording, so finalizing is only a remux.

AAC encoding of ten minutes takes seconds of CPU (far more on a Pi); done at the
end it would keep the guider waiting. Here the audio is laid onto the video
timeline (the same MicTimeline as finalize.py, refitted as the recording grows)
about a second behind the newest frame and chunk, and streamed into an ffmpeg
writing ADTS. Finalizing then copies both streams. If anything goes wrong the
recording is unaffected: finalize falls back to aligning and encoding at the end,
as recovery always does.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from pathlib import Path

import ffmpeg
import numpy as np

from appliance import ffmpeg_tool
from appliance.capture.finalize import MicTimeline, interpolate_window, output_sample_times
from appliance.capture.journal import AUDIO, LIVE_AAC, Journal
from appliance.errors import MediaError

log = logging.getLogger(__name__)
# ffmpeg's AAC encoder starts every stream with 1024 samples of priming that ADTS cannot
# signal; skipping as many input samples keeps the decoded audio on the video timeline.
AAC_PRIMING = 1024
LAG_S = 1.0          # stay this far behind the newest frame and chunk
TICK_S = 1.0
BLOCK_SAMPLES = 48_000
# The fit uses the last minute of chunks: the mapping is local, and a fit over the
# whole recording would grow to tens of ms of CPU (holding the GIL from the camera's
# threads) by the tenth minute.
FIT_WINDOW_CHUNKS = 3000


def live_aac_argv(out: Path, sample_rate: int) -> list[str]:
    """ffmpeg argv: mono s16le on stdin → AAC in ADTS at `out`."""
    return (ffmpeg.input("pipe:0", format="s16le", ar=sample_rate, ac=1)
            .output(str(out), acodec="aac", **{"b:a": "128k"}, format="adts")
            .global_args("-hide_banner", "-loglevel", "error", "-y").compile())


class LiveAudioEncoder:
    """Follows a recording's journal and encodes its aligned audio as it goes."""

    def __init__(self, directory: Path, journal: Journal, *, fps: int,
                 sample_rate: int) -> None:
        self.directory = directory
        self.journal = journal
        self.fps = fps
        self.sample_rate = sample_rate
        self.path = directory / LIVE_AAC
        self._tmp = directory / f".{LIVE_AAC}.tmp"
        self._next = AAC_PRIMING      # next output sample to encode
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: ffmpeg_tool.StderrTail | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()   # one writer to the encoder at a time
        self._thread = threading.Thread(target=self._run, name="live-audio", daemon=True)
        self._failed: str | None = None
        self._pcm = -1

    def start(self) -> None:
        """Start the encoder process and the thread that feeds it."""
        self._proc = ffmpeg_tool.spawn(live_aac_argv(self._tmp, self.sample_rate),
                                       stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert self._proc.stderr is not None
        self._stderr = ffmpeg_tool.StderrTail(self._proc.stderr)
        # Not niced: it needs ~1 % of a core, and niced under load it falls behind,
        # leaving the backlog for finalizing, where the guider waits for it.
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            if not self._advance(final=False):
                return

    def _advance(self, *, final: bool) -> bool:
        """Encode what can be aligned now (everything, if final); False once failed."""
        with self._lock:
            if self._failed:
                return False
            try:
                self._encode_available(final)
                return True
            except (OSError, ValueError, MediaError) as e:
                self._failed = f"live audio encoding stopped ({e})"
                log.warning("%s; the audio will be encoded when finalizing", self._failed)
                return False

    def _encode_available(self, final: bool) -> None:
        pts_list = self.journal.frame_pts[:]
        chunks = self.journal.chunks[-FIT_WINDOW_CHUNKS:]
        if len(pts_list) < 2 or len(chunks) < 2:
            if not final:
                return
        pts = np.array(pts_list, dtype=np.float64)
        if final:
            limit = int(round(len(pts_list) * self.sample_rate / self.fps))
            newest_ns = float("inf")
        else:
            usable_frames = len(pts_list) - 1 - int(LAG_S * self.fps)
            limit = usable_frames * self.sample_rate // self.fps
            newest_ns = chunks[-1].adc_ns - LAG_S * 1e9
        timeline = MicTimeline(chunks, self.sample_rate) if chunks else None
        recorded = chunks[-1].first_sample + chunks[-1].samples if chunks else 0
        while self._next < limit:
            count = min(BLOCK_SAMPLES, limit - self._next)
            times = output_sample_times(pts, self.fps, self.sample_rate, self._next, count)
            if times[-1] > newest_ns:
                count = int(np.searchsorted(times, newest_ns))
                if count <= 0:
                    return
                times = times[:count]
            if timeline is None:
                block = np.zeros(count, dtype="<i2")
            else:
                block = self._aligned(timeline.position(times), recorded)
            self._write(block.tobytes())
            self._next += count

    def _aligned(self, pos: np.ndarray, recorded: int) -> np.ndarray:
        lo = max(0, int(np.floor(pos.min())))
        hi = min(recorded, int(np.ceil(pos.max())) + 2)
        if hi <= lo:
            return np.zeros(len(pos), dtype="<i2")
        if self._pcm < 0:
            self._pcm = os.open(self.directory / AUDIO, os.O_RDONLY)
        raw = os.pread(self._pcm, (hi - lo) * 2, lo * 2)
        window = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")
        return interpolate_window(window, lo, pos)

    def _write(self, data: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(data)
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            tail = self._stderr.text(0.5) if self._stderr else ""
            raise MediaError(f"the AAC encoder exited: {tail or e}") from None

    def finish(self, timeout: float = 120) -> Path | None:
        """Encode the rest (the journal must be closed) and return the AAC, or None."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        ok = self._advance(final=True)
        proc = self._proc
        try:
            if proc is None or proc.stdin is None:
                return None
            try:
                proc.stdin.close()
            except OSError:
                ok = False
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                ok = False
            if not ok or proc.returncode != 0:
                tail = self._stderr.text(0.5) if self._stderr else ""
                log.warning("live audio encoding failed (%s); encoding at the end instead",
                            self._failed or tail or f"exit {proc.returncode}")
                return None
            os.replace(self._tmp, self.path)
            return self.path
        finally:
            self.abort()

    def abort(self) -> None:
        """Stop the encoder and forget its output (safe to call twice)."""
        self._stop.set()
        if self._proc is not None:
            if self._proc.stdin is not None and not self._proc.stdin.closed:
                try:
                    self._proc.stdin.close()
                except OSError:
                    pass  # the encoder is gone already
            ffmpeg_tool.stop_process(self._proc, timeout=5)
        if self._pcm >= 0:
            os.close(self._pcm)
            self._pcm = -1
        self._tmp.unlink(missing_ok=True)
