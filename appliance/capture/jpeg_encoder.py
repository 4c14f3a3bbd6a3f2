"""Raw yuv420p pictures in, JPEGs out: one long-lived, niced ffmpeg for the live preview.

ffmpeg is asked to hand each JPEG out as soon as its picture is in: it must not probe
the input (it would wait for megabytes of it) nor encode on several threads (each
thread holds a picture back). The JPEGs are cut apart by walking their structure.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import subprocess
import time

import ffmpeg

from appliance import ffmpeg_tool
from appliance.errors import MediaError

# ffmpeg's -q:v for MJPEG: 2 (best) to 31. 6 keeps a 640x360 picture near 30 KB.
JPEG_QSCALE = 6
SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD8)}   # markers without a length: TEM, RST0-7


def jpeg_encoder_argv(width: int, height: int, qscale: int = JPEG_QSCALE) -> list[str]:
    """ffmpeg argv: raw yuv420p pictures on stdin → one full-range JPEG per picture on
    stdout, each out as soon as its picture is in."""
    stream = ffmpeg.input("pipe:0", format="rawvideo", pix_fmt="yuv420p",
                          s=f"{width}x{height}", framerate=1,
                          probesize=32, analyzeduration=0)
    out = stream.output("pipe:1", format="image2pipe", vcodec="mjpeg", pix_fmt="yuvj420p",
                        threads=1, flush_packets=1, **{"q:v": qscale,
                                                       "fps_mode": "passthrough"})
    return out.global_args("-hide_banner", "-loglevel", "error", "-nostdin").compile()


def jpeg_length(data: bytes | bytearray) -> int | None:
    """The length of the JPEG at the start of `data`, or None if it is not complete yet.

    Marker segments carry their length; in entropy-coded data a 0xFF byte is always
    followed by 0x00 (stuffing) or a restart marker, so the next other marker ends the
    scan. MediaError if `data` is not a JPEG."""
    if len(data) < 2:
        return None
    if data[0] != 0xFF or data[1] != SOI:
        raise MediaError("the preview encoder wrote something that is not a JPEG")
    i = 2
    in_scan = False
    while True:
        if in_scan:
            i = data.find(b"\xff", i)
            if i < 0 or i + 1 >= len(data):
                return None
            if data[i + 1] == 0x00 or data[i + 1] in _STANDALONE or data[i + 1] == 0xFF:
                i += 1
                continue
            in_scan = False
        if i + 2 > len(data):
            return None
        if data[i] != 0xFF:
            raise MediaError("the preview encoder wrote a damaged JPEG")
        marker = data[i + 1]
        if marker == 0xFF:        # fill byte before a marker
            i += 1
        elif marker == EOI:
            return i + 2
        elif marker in _STANDALONE:
            i += 2
        else:
            if i + 4 > len(data):
                return None
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
            in_scan = marker == SOS


class JpegEncoder:
    """One ffmpeg child that turns pictures into JPEGs, one in, one out, with a deadline
    on each (a hung encoder can never hang its caller)."""

    def __init__(self, width: int, height: int, *, nice: int) -> None:
        self.width, self.height = width, height
        self.frame_bytes = width * height * 3 // 2
        self._proc = ffmpeg_tool.spawn(jpeg_encoder_argv(width, height),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, nice=nice)
        assert self._proc.stdin and self._proc.stdout and self._proc.stderr
        self._stderr = ffmpeg_tool.StderrTail(self._proc.stderr)
        self._in = self._proc.stdin.fileno()
        self._out = self._proc.stdout.fileno()
        with contextlib.suppress(OSError):  # a whole picture fits: fewer wake-ups
            fcntl.fcntl(self._in, fcntl.F_SETPIPE_SZ, 1 << 20)
        os.set_blocking(self._in, False)
        self._buf = bytearray()

    @property
    def pid(self) -> int:
        """The encoder's process id."""
        return self._proc.pid

    def encode(self, picture: bytes, timeout_s: float) -> bytes:
        """The JPEG of one raw yuv420p picture; MediaError if the encoder fails or takes
        longer than `timeout_s`."""
        if len(picture) != self.frame_bytes:
            raise MediaError(f"a {self.width}x{self.height} picture has {self.frame_bytes} "
                             f"bytes, not {len(picture)}")
        deadline = time.monotonic() + timeout_s
        view = memoryview(picture)
        while view:
            self._wait(self._in, write=True, deadline=deadline)
            try:
                view = view[os.write(self._in, view):]
            except BlockingIOError:
                continue
            except OSError:
                raise MediaError(f"the preview encoder stopped taking pictures"
                                 f"{self._why()}") from None
        while (n := jpeg_length(self._buf)) is None:
            self._wait(self._out, write=False, deadline=deadline)
            data = os.read(self._out, 1 << 16)
            if not data:
                raise MediaError(f"the preview encoder exited{self._why()}")
            self._buf += data
        jpeg = bytes(self._buf[:n])
        del self._buf[:n]
        return jpeg

    def _wait(self, fd: int, *, write: bool, deadline: float) -> None:
        left = deadline - time.monotonic()
        ready = select.select([], [fd], [], max(0.0, left)) if write else \
            select.select([fd], [], [], max(0.0, left))
        if not any(ready):
            raise MediaError("the preview encoder did not answer in time")

    def _why(self) -> str:
        if self._proc.poll() is None:
            return ""
        tail = self._stderr.text(0.5).strip()
        return f" ({tail.splitlines()[-1]})" if tail else f" (exit {self._proc.returncode})"

    def close(self) -> None:
        """End the encoder (terminate → wait → kill) and close its pipes."""
        assert self._proc.stdin and self._proc.stdout
        with contextlib.suppress(OSError):
            self._proc.stdin.close()
        ffmpeg_tool.stop_process(self._proc, timeout=2)
        self._proc.stdout.close()
