"""Who sets the box's clock: systemd-timedated (through `timedatectl`, over D-Bus, as the
web service may not touch the clock itself), or a simulation that never touches this
machine's clock (the demo and the tests). argv lists are pure functions, tested as lists."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from appliance import system_tool
from appliance.errors import InputError, SystemToolError
from appliance.layout import Layout
from appliance.wall_clock import SIMULATED, SimulatedWallClock, from_epoch_ms

TIMEDATECTL = "timedatectl"
PACKAGE = "systemd"
# The polkit actions the web service's user needs (systemd/51-vigbox-clock.rules).
POLKIT_ACTIONS = ("org.freedesktop.timedate1.set-time", "org.freedesktop.timedate1.set-ntp")
QUERY_TIMEOUT_S = 10.0
# Starting or stopping systemd-timesyncd can take a while on a busy Pi (D-Bus waits 25 s).
CHANGE_TIMEOUT_S = 30.0
NTP_RELEASE_S = 5.0    # how long timedated may take to notice that NTP is off
NTP_POLL_S = 0.2
NTP_ENABLED = "Automatic time synchronization is enabled"
NTP_SYNCED = ("the box's clock is kept right by network time (NTP) and is synchronised, "
              "so it was not changed: check this tablet's date and time instead")
# What timedated answers a caller polkit does not allow, and what to do about it.
REFUSED = ("Access denied", "Interactive authentication required", "Permission denied")
POLKIT_ADVICE = ("the box's service may not set the clock: install systemd/51-vigbox-clock.rules "
                 "into /etc/polkit-1/rules.d/")

TabletNow = Callable[[], int]   # the tablet's time now, epoch ms


class ClockBackend(Protocol):
    """Reads and sets the box's clock."""

    name: str

    def now_ms(self) -> int:
        """The box's time as its recordings are dated, epoch ms."""

    def set(self, tablet_now: TabletNow) -> dict[str, Any]:
        """Set the clock to `tablet_now()`, read at the last moment; what was done, for
        the audit log ("warning": something left to put right). Raises only when the
        clock was not changed."""


def show_argv() -> list[str]:
    """Ask timedated whether network time is on and synchronised."""
    return [TIMEDATECTL, "show", "--property=NTP", "--property=NTPSynchronized"]


def set_ntp_argv(on: bool) -> list[str]:
    """Turn network time synchronisation on or off."""
    return [TIMEDATECTL, "--no-ask-password", "set-ntp", "true" if on else "false"]


def set_time_argv(epoch_ms: int) -> list[str]:
    """Set the clock to an instant. The trailing " UTC" matters: without it timedatectl
    reads the time in the box's local time zone."""
    text = from_epoch_ms(epoch_ms).strftime("%Y-%m-%d %H:%M:%S.") + f"{epoch_ms % 1000:03d} UTC"
    return [TIMEDATECTL, "--no-ask-password", "set-time", text]


def parse_show(output: str) -> dict[str, bool]:
    """`NTP=yes\\nNTPSynchronized=no` as {"NTP": True, "NTPSynchronized": False}."""
    values = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip() == "yes"
    return values


class TimedatedClock:
    """The real clock, set by systemd-timedated.

    timedated refuses SetTime while NTP is on ("Automatic time synchronization is
    enabled"), even when it never synchronised (systemd issue #9859), which is how a Pi in
    a family home runs. So: NTP on and synchronised — refuse, the tablet is the one that
    is wrong; NTP on and not synchronised — pause it, set the time, and always turn it
    on again, so the box still corrects itself once it reaches a network (sync)."""

    name = "timedated"

    def __init__(self, run: Callable[..., str] = system_tool.run) -> None:
        self._run = run

    def now_ms(self) -> int:
        """This machine's clock."""
        return time.time_ns() // 1_000_000

    def set(self, tablet_now: TabletNow) -> dict[str, Any]:
        """Set the system clock through timedated."""
        state = self._ntp_state()
        if state.get("NTP") and state.get("NTPSynchronized"):
            raise InputError(NTP_SYNCED)
        if not state.get("NTP"):
            self._set_time(tablet_now)
            return {"ntp": "off"}
        self._tool(set_ntp_argv(False), "pausing network time", CHANGE_TIMEOUT_S)
        try:
            self._set_time(tablet_now, wait_for_ntp_off=True)
        except BaseException as e:
            # The clock did not change: network time goes on again, and the first error
            # is the one that says why the clock was not set.
            problem = self._ntp_on_again()
            if problem and isinstance(e, SystemToolError):
                raise SystemToolError(f"{e}; also, {problem}") from e
            raise
        # The clock did change: a failure now must not hide that (the caller audits the
        # change and ends the sessions), so it is told as a warning, not raised.
        problem = self._ntp_on_again()
        if problem:
            return {"ntp": "paused while setting, NOT on again", "warning": problem}
        return {"ntp": "paused while setting, then on again"}

    def _ntp_on_again(self) -> str | None:
        """Turn network time on again; what went wrong, if it did."""
        try:
            self._tool(set_ntp_argv(True), "turning network time on again", CHANGE_TIMEOUT_S)
        except SystemToolError as e:
            return (f"network time could not be turned on again ({e}): run "
                    "`sudo timedatectl set-ntp true` on the box")
        return None

    def _ntp_state(self) -> dict[str, bool]:
        return parse_show(self._tool(show_argv(), "reading the clock's settings",
                                     QUERY_TIMEOUT_S))

    def _set_time(self, tablet_now: TabletNow, *, wait_for_ntp_off: bool = False) -> None:
        # Right after set-ntp false, timedated may still say NTP is on for a moment
        # (systemd issue #11420): try again until a deadline, never longer.
        deadline = time.monotonic() + (NTP_RELEASE_S if wait_for_ntp_off else 0.0)
        while True:
            try:
                self._tool(set_time_argv(tablet_now()), "setting the clock", CHANGE_TIMEOUT_S)
                return
            except SystemToolError as e:
                if NTP_ENABLED not in str(e) or time.monotonic() >= deadline:
                    raise
            time.sleep(NTP_POLL_S)

    def _tool(self, argv: list[str], what: str, timeout: float) -> str:
        try:
            return self._run(argv, timeout=timeout, what=what, package=PACKAGE)
        except SystemToolError as e:
            if any(words in str(e) for words in REFUSED):
                raise SystemToolError(f"{e}; {POLKIT_ADVICE}") from None
            raise


class SimulatedClock:
    """The demo's and the tests' clock: this machine's clock plus an offset kept in the
    data dir (appliance.wall_clock), which the capture process reads to date recordings.
    Setting it changes only the offset, never this machine's clock."""

    name = "simulated"

    def __init__(self, layout: Layout) -> None:
        self._clock = SimulatedWallClock(layout.clock_offset)

    def now_ms(self) -> int:
        """This machine's clock plus the offset."""
        return self._clock.now_ms()

    def set(self, tablet_now: TabletNow) -> dict[str, Any]:
        """Move the offset so the box's time is now the tablet's."""
        offset_ms = tablet_now() - time.time_ns() // 1_000_000
        self._clock.set_offset_ms(offset_ms)
        return {"simulated": True, "system_clock": "not changed", "offset_ms": offset_ms}


def backend_for(name: str, layout: Layout) -> ClockBackend:
    """The configured backend ([clock] backend) of the box whose data dir `layout`
    describes."""
    if name == SIMULATED:
        return SimulatedClock(layout)
    return TimedatedClock()
