"""The capture daemon's control socket: one JSON request per line, one JSON reply per line.

Request: {"cmd": "status" | "start" | "stop" | "mark" | "preview" | "case" | "press" |
"level", ...arguments}.
Reply: {"ok": true, ...result} or {"ok": false, "error": "what went wrong", "kind": K}
where K is "busy" (conflicts with what the box is doing), "bad_request" (the request
itself is wrong) or "failed" (the box tried and could not); the client raises the
matching ControlError subclass, and "not_running" when nothing answers.

- {"cmd": "preview"} → {"jpeg_b64", "taken_at_ns", "width", "height", "state"}: the
  newest live-preview JPEG (base64), when it was exposed (CLOCK_MONOTONIC ns) and the
  daemon's state; each request keeps the preview coming a few seconds more. "busy"
  when the camera is not open, "failed" when it has no preview or the preview failed.
- {"cmd": "case", "case": "CODE" | null} → {"case": "CODE" | null}: the case that
  recordings started without naming one (the button's) are filed under, until changed;
  "bad_request" for an unknown case or one without consent to filming.
- {"cmd": "press", "hold_s": S} → {"hold_s": S}: press the simulated box's button for S
  seconds (the gestures as on a real button); "bad_request" on a box with a real one.
- {"cmd": "level"} → {"peak_dbfs", "rms_dbfs", "seconds"}: the daemon listens to its
  microphone for a second and measures it (for `vigbox doctor`: the daemon owns the
  microphone). A start meanwhile waits for the listen to end. "busy" while recording or
  finalizing ("in use by the recording"), starting a recording or shutting down;
  "bad_request" on a box without a microphone; "failed" with the reason when the
  microphone fails.

A Unix socket in the data dir, mode 0660, so only the box's own services reach it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.errors import (
    ApplianceError,
    BusyError,
    ControlError,
    DaemonBusyError,
    DaemonFailedError,
    DaemonNotRunningError,
    DaemonRequestError,
    InputError,
    NotFoundError,
)

log = logging.getLogger(__name__)
COMMANDS = ("status", "start", "stop", "mark", "preview", "case", "press", "level")
MAX_REQUEST = 64 * 1024
MAX_REPLY = 2 * 1024 * 1024   # a preview picture (at most 512 KiB) in base64, and room
Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlServer:
    """Serves requests on a Unix socket, each on its own thread, via `handle(request)`."""

    def __init__(self, path: Path, handle: Handler) -> None:
        self.path = path
        self._handle = handle
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind the socket (replacing a stale one) and serve in the background."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if _answers(self.path):
                raise ControlError(f"another capture daemon is already listening on {self.path}")
            self.path.unlink()
        outer = self

        class RequestHandler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(MAX_REQUEST + 1)
                reply = outer._reply(line)
                self.wfile.write((json.dumps(reply) + "\n").encode())

        server = socketserver.ThreadingUnixStreamServer(str(self.path), RequestHandler,
                                                        bind_and_activate=False)
        server.daemon_threads = True
        old = os.umask(0o117)  # the socket is born 0660: no window where others could connect
        try:
            server.server_bind()
        finally:
            os.umask(old)
        server.server_activate()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="control", daemon=True,
                                        kwargs={"poll_interval": 0.2})
        self._thread.start()
        log.info("control socket at %s", self.path)

    @property
    def alive(self) -> bool:
        """True while the serving thread runs (the watchdog checks this)."""
        return self._thread is not None and self._thread.is_alive()

    def _reply(self, line: bytes) -> dict[str, Any]:
        if len(line) > MAX_REQUEST:
            return refusal("bad_request", "request too long")
        try:
            request = json.loads(line)
        except ValueError:
            return refusal("bad_request", "request is not JSON")
        if not isinstance(request, dict) or request.get("cmd") not in COMMANDS:
            return refusal("bad_request", f"unknown command; use one of {', '.join(COMMANDS)}")
        try:
            return {"ok": True, **self._handle(request)}
        except ApplianceError as e:
            return refusal(error_kind(e), str(e))
        except Exception as e:  # noqa: BLE001 - a bad request must never kill the daemon
            log.exception("control: %s failed", request.get("cmd"))
            return refusal("failed", f"internal error: {e}")

    def stop(self) -> None:
        """Stop serving and remove the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
        self.path.unlink(missing_ok=True)


def _answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(str(path))
        return True
    except OSError:
        return False


def request(path: Path, cmd: str, *, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
    """Send one command to the daemon and return its result; ControlError on any failure."""
    if cmd not in COMMANDS:
        raise DaemonRequestError(f"unknown command {cmd!r}; use one of {', '.join(COMMANDS)}")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall((json.dumps({"cmd": cmd, **args}) + "\n").encode())
            data = _read_reply(s)
    except FileNotFoundError:
        raise DaemonNotRunningError(f"the capture daemon is not running (no socket at {path}); "
                                    "start it with `systemctl start vigbox-capture`") from None
    except ConnectionRefusedError:
        raise DaemonNotRunningError(f"the capture daemon is not running (stale socket at "
                                    f"{path})") from None
    except TimeoutError:
        raise DaemonFailedError(f"the capture daemon did not answer {cmd!r} within "
                                f"{timeout:g} s") from None
    except OSError as e:
        raise DaemonNotRunningError(f"cannot reach the capture daemon at {path}: "
                                    f"{e.strerror}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise DaemonFailedError("the capture daemon gave an unreadable answer") from None
    if not isinstance(reply, dict):
        raise DaemonFailedError("the capture daemon gave an unreadable answer")
    if not reply.get("ok"):
        error_class = REFUSALS.get(str(reply.get("kind")), DaemonFailedError)
        raise error_class(str(reply.get("error") or "the capture daemon refused"))
    reply.pop("ok")
    return reply


def _read_reply(s: socket.socket) -> bytes:
    """One reply line, at most MAX_REPLY bytes."""
    parts: list[bytes] = []
    size = 0
    while not parts or not parts[-1].endswith(b"\n"):
        part = s.recv(1 << 16)
        if not part:
            break
        parts.append(part)
        size += len(part)
        if size > MAX_REPLY:
            raise DaemonFailedError(f"the capture daemon's answer is longer than "
                                    f"{MAX_REPLY} bytes")
    return b"".join(parts)


REFUSALS: dict[str, type[ControlError]] = {
    "busy": DaemonBusyError, "bad_request": DaemonRequestError, "failed": DaemonFailedError}


def request_actor(request: dict[str, Any]) -> str:
    """Who sent a request, for the audit log: an account the web names, else "control"."""
    actor = request.get("actor")
    if isinstance(actor, str) and 0 < len(actor) <= 64 and actor.isprintable():
        return actor
    return "control"


def refusal(kind: str, error: str) -> dict[str, Any]:
    """A refusal reply of one of the REFUSALS kinds."""
    return {"ok": False, "error": error, "kind": kind}


def error_kind(e: ApplianceError) -> str:
    """How the daemon's own error is reported: busy, bad_request or failed."""
    if isinstance(e, BusyError):
        return "busy"
    if isinstance(e, (InputError, NotFoundError)):
        return "bad_request"  # includes an unknown case and a case without consent
    return "failed"
