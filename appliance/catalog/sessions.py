"""Sessions of the tablet UI, kept on the box: a cookie only names one, so a session
ends for good at logout, when its account is removed or its passphrase changes, after
an idle while, and at an absolute age, even if the cookie was copied."""

from __future__ import annotations

import secrets
import time

from appliance.catalog.db import Database

SEEN_EVERY_S = 30.0   # refresh `seen` at most this often: a write per request is waste


class Sessions:
    """The web_sessions table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def start(self, user: str, *, now: float | None = None) -> str:
        """A new session for `user`; its unguessable id."""
        now = time.time() if now is None else now
        sid = secrets.token_urlsafe(32)
        with self._db.transaction() as db:
            db.execute("INSERT INTO web_sessions (id, user, created, seen) VALUES (?,?,?,?)",
                       (sid, user, now, now))
        return sid

    def check(self, sid: str, *, idle_s: float, max_age_s: float, touch: bool,
              now: float | None = None) -> str | None:
        """The user of a live session (refreshing its idle clock if `touch`), else None
        (an unknown, idle or too old session is ended)."""
        now = time.time() if now is None else now
        with self._db.read() as db:
            row = db.execute("SELECT * FROM web_sessions WHERE id=?", (sid,)).fetchone()
        if row is None:
            return None
        if now - row["seen"] > idle_s or now - row["created"] > max_age_s:
            self.end(sid)
            return None
        if touch and now - row["seen"] > SEEN_EVERY_S:
            with self._db.transaction() as db:
                db.execute("UPDATE web_sessions SET seen=? WHERE id=?", (now, sid))
        return str(row["user"])

    def end(self, sid: str) -> None:
        """End one session (logout)."""
        with self._db.transaction() as db:
            db.execute("DELETE FROM web_sessions WHERE id=?", (sid,))

    def end_all(self, user: str) -> int:
        """End every session of an account; how many there were."""
        with self._db.transaction() as db:
            return db.execute("DELETE FROM web_sessions WHERE user=?", (user,)).rowcount

    def end_everyone(self) -> int:
        """End every session, whoever's, and of accounts since removed (the box's clock
        they were timed on was set); how many there were."""
        with self._db.transaction() as db:
            return db.execute("DELETE FROM web_sessions").rowcount

    def sweep(self, *, older_than_s: float, now: float | None = None) -> int:
        """Forget sessions not seen for a long time."""
        now = time.time() if now is None else now
        with self._db.transaction() as db:
            return db.execute("DELETE FROM web_sessions WHERE seen < ?",
                              (now - older_than_s,)).rowcount
