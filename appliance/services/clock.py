"""The box's clock against the tablet's. A Pi 4 has no real-time clock and a family home
no network time, so the box may boot with a wrong date and date its recordings by it;
the tablet's clock is usually right. A guider may set the box's clock forward from it by
any amount (a Pi switched off over a weekend boots days behind), and back by up to a day
(MAX_GUIDER_CHANGE_S); putting it back further needs an administrator's account or the
box's shell, as it re-dates what is recorded next into the past. All of it is audited.
A clock moved far ahead would make every clip the office holds look old to sync's
retention, which guards against that (see appliance.sync.retention).

Setting it is allowed at any time: capture times frames and sound on CLOCK_MONOTONIC,
which a clock change does not move, so a running recording stays whole (it keeps the
start date it was given). Web sessions are timed on the wall clock, so every one ends,
in the same transaction as the audit entry: a jump forward would end them anyway, a jump
back would stretch them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from appliance.catalog.audit import check_actor
from appliance.catalog.db import utc_now
from appliance.errors import AuthError, InputError
from appliance.services.app import App
from appliance.services.clock_backends import ClockBackend, backend_for
from appliance.wall_clock import from_epoch_ms

# No true time is earlier than this software (written in November 2026), nor, for this
# box, later than 2100: a tablet saying so is itself wrong.
EARLIEST = datetime(2026, 11, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
EARLIEST_MS = int(EARLIEST.timestamp()) * 1000
LATEST_MS = int(LATEST.timestamp()) * 1000
# A Pi without a real-time clock boots with the time it was shut down, hours or days
# behind: a guider may put that right. A box ahead of the tablet by more than this is
# put back only by an administrator (the audit log names which).
MAX_GUIDER_CHANGE_S = 24 * 3600


@dataclass(frozen=True)
class ClockStatus:
    """The box's time now, and when the tablet should offer to set it."""

    box_epoch_ms: int
    max_skew_s: float
    backend: str

    def to_json(self) -> dict[str, Any]:
        """Plain data (GET /api/clock, `vigbox clock --json`)."""
        return {"box_epoch_ms": self.box_epoch_ms, "box_time": iso(self.box_epoch_ms),
                "max_skew_s": self.max_skew_s, "backend": self.backend}


@dataclass(frozen=True)
class ClockSet:
    """What setting the clock did: the box's time now, and the skew before and after."""

    status: ClockStatus
    changed: bool
    skew_before_s: float
    skew_s: float
    sessions_ended: int
    warning: str | None = None   # set, but something is left to put right (network time)

    def to_json(self) -> dict[str, Any]:
        """Plain data (POST /api/clock, `vigbox clock set --json`)."""
        return {**self.status.to_json(), "changed": self.changed,
                "skew_before_s": round(self.skew_before_s, 3), "skew_s": round(self.skew_s, 3),
                "sessions_ended": self.sessions_ended, "warning": self.warning}


def skew(asked_epoch_ms: int, box_epoch_ms: int) -> float:
    """How far the box's clock is ahead of the asked time, in seconds (negative: behind)."""
    return (box_epoch_ms - asked_epoch_ms) / 1000


def iso(epoch_ms: int) -> str:
    """An instant as ISO 8601 UTC with milliseconds (as the catalog writes times)."""
    return utc_now(from_epoch_ms(epoch_ms))


def backend(app: App) -> ClockBackend:
    """The box's clock as configured ([clock] backend)."""
    return backend_for(app.config.clock.backend, app.layout)


def status(app: App) -> ClockStatus:
    """The box's time, the skew the tablet tolerates, and who sets the clock."""
    clock = backend(app)
    return ClockStatus(clock.now_ms(), app.config.clock.max_skew_s, clock.name)


def check_tablet_time(tablet_epoch_ms: object, *, whose: str = "the tablet's") -> int:
    """The tablet's time if it is a plausible instant; InputError saying why not."""
    if isinstance(tablet_epoch_ms, bool) or not isinstance(tablet_epoch_ms, int):
        raise InputError("the tablet's time must be a whole number of milliseconds since "
                         "1970 (as JavaScript's Date.now() gives it)")
    if not EARLIEST_MS <= tablet_epoch_ms < LATEST_MS:
        raise InputError(f"{whose} time is {_words(tablet_epoch_ms)}, which cannot be right "
                         f"(it must be after {EARLIEST:%d %b %Y} and before {LATEST:%Y}): "
                         f"correct {whose} date and time, then try again")
    return tablet_epoch_ms


def parse_time(text: str) -> int:
    """An ISO 8601 instant with its time zone (`2026-12-07T10:15:00+01:00`, `...Z`) as
    epoch ms; InputError for anything else, as a time without a zone is a guess."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{text!r} is not a date and time; write it as ISO 8601, e.g. "
                         "2026-12-07T10:15:00+01:00 or 2026-12-07T09:15:00Z") from None
    if when.tzinfo is None:
        raise InputError(f"{text!r} has no time zone: add it (+01:00, or Z for UTC), as the "
                         "box would otherwise have to guess")
    return check_tablet_time(round(when.timestamp() * 1000), whose="the given")


def set_clock(app: App, tablet_epoch_ms: object, *, actor: str, admin: bool,
              only_if_beyond_max_skew: bool = True) -> ClockSet:
    """Set the box's clock to the tablet's time (or a time an administrator typed), when
    they differ by more than clock.max_skew_s (else nothing changes; `only_if_beyond_max_
    skew=False`: whatever the difference). Unless `admin` (an administrator's account, or
    the box's shell), AuthError for putting it back by more than MAX_GUIDER_CHANGE_S. Audited as
    clock.set with the box's old time, the new one and the account; every web session
    ends (see the module's docstring)."""
    received = time.monotonic()
    check_actor(actor)   # before the clock moves: a change must never go unaudited
    asked_ms = check_tablet_time(tablet_epoch_ms)
    clock = backend(app)
    before_ms = clock.now_ms()
    before_s = skew(asked_ms, before_ms)
    changed = abs(before_s) > app.config.clock.max_skew_s or not only_if_beyond_max_skew
    if changed and not admin and before_s > MAX_GUIDER_CHANGE_S:
        raise AuthError(f"the box's clock is {_days(before_s)} days ahead of this tablet: "
                        "an administrator must set it back (log in as one)")
    ended = 0
    done: dict[str, Any] = {}
    if changed:
        set_to: list[int] = []

        def asked_now() -> int:
            # Time went on while the box got ready (timedated may take seconds): set the
            # asked time plus what has passed since, read at the last moment.
            set_to.append(asked_ms + round((time.monotonic() - received) * 1000))
            return set_to[-1]

        done = clock.set(asked_now)
        catalog = app.catalog
        # One transaction: no session outlives the clock it was timed on unless the
        # change is also in the audit log, nor the other way round.
        with catalog.db.transaction() as db:
            ended = catalog.sessions.end_everyone()
            catalog.audit.append_in(db, "clock.set", None, actor=actor, detail={
                "backend": clock.name, "box_time_before": iso(before_ms),
                "set_to": iso(set_to[-1]), "asked_time": iso(asked_ms),
                "skew_s": round(before_s, 3), "sessions_ended": ended, **done})
    now = status(app)
    elapsed_ms = round((time.monotonic() - received) * 1000)
    return ClockSet(now, changed, before_s, skew(asked_ms + elapsed_ms, now.box_epoch_ms),
                    ended, done.get("warning"))


def _days(skew_s: float) -> str:
    days = abs(skew_s) / 86400
    return f"{days:.1f}" if days < 10 else f"{days:.0f}"


def _words(epoch_ms: int) -> str:
    try:
        return f"{datetime.fromtimestamp(epoch_ms / 1000, UTC):%d %b %Y %H:%M} UTC"
    except (OverflowError, OSError, ValueError):
        return f"{epoch_ms} ms since 1970"
