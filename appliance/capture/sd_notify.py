"""systemd's notify protocol (READY, STATUS, WATCHDOG) without a library.

Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify datagrams to the socket systemd gave us."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        # A leading '@' means Linux's abstract namespace.
        self._address = "\0" + address[1:] if address.startswith("@") else address

    @property
    def enabled(self) -> bool:
        """True when running under systemd with Type=notify."""
        return bool(self._address)

    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half of WatchdogSec, or None if no watchdog is set."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 2e6
        except ValueError:
            return None

    def send(self, **fields: str) -> None:
        """Send e.g. READY="1", STATUS="recording"; errors are logged, never raised."""
        if not self._address:
            return
        message = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.connect(self._address)
                s.sendall(message)
        except OSError as e:
            log.warning("could not notify systemd: %s", e)

    def ready(self, status: str) -> None:
        """Tell systemd the daemon is up."""
        self.send(READY="1", STATUS=status)

    def status(self, status: str) -> None:
        """Update the one-line status shown by `systemctl status`."""
        self.send(STATUS=status)

    def watchdog(self) -> None:
        """Tell systemd the daemon is alive and well."""
        self.send(WATCHDOG="1")

    def stopping(self) -> None:
        """Tell systemd a clean stop is under way."""
        self.send(STOPPING="1", STATUS="stopping")
