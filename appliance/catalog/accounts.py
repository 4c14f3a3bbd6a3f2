"""Accounts of the tablet UI (guiders and administrators) and failed-login throttling.

Passphrases are stored only as scrypt hashes (Werkzeug's default); neither a
passphrase nor its hash ever goes into the audit log.
"""

from __future__ import annotations

import builtins
import functools
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from appliance.catalog.audit import AuditLog
from appliance.catalog.db import Database, utc_now
from appliance.errors import AuthError, InputError, LockedOutError, NotFoundError

NAME_RE = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
MIN_PASSPHRASE = 8
MAX_PASSPHRASE = 1024
FREE_FAILURES = 3          # failures allowed before the first lockout
FIRST_LOCKOUT_S = 5.0      # then 5 s, 10 s, 20 s ... doubling
MAX_LOCKOUT_S = 15 * 60.0
FORGET_AFTER_S = 24 * 3600.0   # a quiet day wipes the slate
@functools.cache
def _dummy_hash() -> str:
    """Checked when the account is unknown, so a wrong name costs as long as a wrong
    passphrase; made on first use, not at import (every command imports the catalog)."""
    return generate_password_hash("not a passphrase of anyone")
# scrypt takes tens of MB and ~0.1 s: a burst of logins must not take every core and
# the memory of a 1 GB Pi.
_HASH_CHECKS = threading.BoundedSemaphore(2)


def check_user_name(name: str) -> str:
    """An account name: lowercase letters, digits, '.', '_' or '-', starting with a letter."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InputError(f"{name!r} is not a usable account name: use 1-32 lowercase letters, "
                         "digits, '.', '_' or '-', starting with a letter")
    return name


def check_passphrase(passphrase: str) -> str:
    """A passphrase long enough to resist guessing on a shared network."""
    if not isinstance(passphrase, str) or len(passphrase) < MIN_PASSPHRASE:
        raise InputError(f"a passphrase needs at least {MIN_PASSPHRASE} characters")
    if len(passphrase) > MAX_PASSPHRASE:
        raise InputError(f"a passphrase may have at most {MAX_PASSPHRASE} characters")
    if passphrase != passphrase.strip() or "\n" in passphrase:
        raise InputError("a passphrase may not start or end with spaces or hold a line break")
    return passphrase


def lockout_s(failures: int) -> float:
    """How long a key is locked after this many failures in a row (0: not locked)."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(MAX_LOCKOUT_S, FIRST_LOCKOUT_S * 2 ** (failures - FREE_FAILURES))


@dataclass(frozen=True)
class User:
    """An account (never carries its hash out of this module)."""

    name: str
    is_admin: bool
    generation: int
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"name": self.name, "admin": self.is_admin, "created_at": self.created_at}


class Accounts:
    """The users and login_failures tables."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    def set_passphrase(self, name: str, passphrase: str, *, admin: bool | None = None,
                       actor: str) -> tuple[User, bool]:
        """Set an account's passphrase, creating the account if missing; (user, created).

        `admin` None keeps the role of an existing account (a new one is a guider)."""
        check_user_name(name)
        pw_hash = generate_password_hash(check_passphrase(passphrase))
        now = utc_now()
        with self._db.transaction() as db:
            row = db.execute("SELECT * FROM users WHERE name=?", (name,)).fetchone()
            if row is None:
                db.execute("INSERT INTO users (name, pw_hash, is_admin, created_at, updated_at)"
                           " VALUES (?,?,?,?,?)", (name, pw_hash, int(bool(admin)), now, now))
                self._audit.append_in(db, "user.add", name, actor=actor,
                                      detail={"admin": bool(admin)})
            else:
                is_admin = row["is_admin"] if admin is None else int(admin)
                db.execute("UPDATE users SET pw_hash=?, is_admin=?, generation=generation+1,"
                           " updated_at=? WHERE name=?", (pw_hash, is_admin, now, name))
                # A new passphrase ends every session the old one opened.
                db.execute("DELETE FROM web_sessions WHERE user=?", (name,))
                self._audit.append_in(db, "user.passphrase", name, actor=actor)
            db.execute("DELETE FROM login_failures WHERE key=?", (f"user:{name}",))
            return _user(self._row(db, name)), row is None

    def add(self, name: str, passphrase: str, *, admin: bool, actor: str) -> User:
        """A new account; InputError if the name is taken."""
        check_user_name(name)
        with self._db.transaction():
            if self.exists(name):
                raise InputError(f"there is already an account {name!r}")
            return self.set_passphrase(name, passphrase, admin=admin, actor=actor)[0]

    def remove(self, name: str, *, actor: str) -> None:
        """Remove an account; the last administrator cannot be removed."""
        with self._db.transaction() as db:
            user = _user(self._row(db, name))
            if user.is_admin:
                admins = db.execute("SELECT COUNT(*) FROM users WHERE is_admin=1").fetchone()[0]
                if admins <= 1:
                    raise InputError(f"{name!r} is the only administrator: make another "
                                     "administrator first")
            db.execute("DELETE FROM users WHERE name=?", (name,))
            db.execute("DELETE FROM web_sessions WHERE user=?", (name,))
            self._audit.append_in(db, "user.remove", name, actor=actor)

    def get(self, name: str) -> User:
        """One account; NotFoundError if unknown."""
        with self._db.read() as db:
            return _user(self._row(db, name))

    def exists(self, name: str) -> bool:
        """True if the account exists."""
        with self._db.read() as db:
            return db.execute("SELECT 1 FROM users WHERE name=?", (name,)).fetchone() is not None

    def list(self) -> list[User]:
        """Every account, by name."""
        with self._db.read() as db:
            rows = db.execute("SELECT * FROM users ORDER BY name").fetchall()
        return [_user(r) for r in rows]

    def count(self) -> int:
        """How many accounts exist (none: the UI offers its set-up page)."""
        with self._db.read() as db:
            return int(db.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def authenticate(self, name: str, passphrase: str, *, client: str,
                     now: float | None = None) -> User:
        """The account if the passphrase is right; AuthError if not, LockedOutError while
        the account or the client is locked out after repeated failures."""
        now = time.time() if now is None else now
        user_key, client_key = f"user:{name[:64]}", f"client:{client[:64]}"
        # The attempt counts as a failure before the slow hash check, in the same
        # transaction as the lock check: parallel guesses cannot all pass an open lock.
        with self._db.transaction() as db:
            self._check_locks_in(db, [user_key, client_key], now)
            for key in (user_key, client_key):
                self._fail_in(db, key, now)
            row = db.execute("SELECT * FROM users WHERE name=?", (name,)).fetchone()
        with _HASH_CHECKS:
            ok = check_password_hash(row["pw_hash"] if row else _dummy_hash(), passphrase)
        with self._db.transaction() as db:
            if row is None or not ok:
                self._audit.append_in(db, "login.failed", None, actor="web",
                                      detail={"client": client[:64]})
            else:
                # The account's count is cleared; the client's is only halved: an account
                # of one's own must not wipe the count of guesses at others, nor a
                # guider's occasional typo add up over a day into long lockouts.
                self._unfail_in(db, client_key)
                db.execute("DELETE FROM login_failures WHERE key=?", (user_key,))
                self._audit.append_in(db, "login", name, actor=name,
                                      detail={"client": client[:64]})
        if row is None or not ok:
            raise AuthError("wrong account name or passphrase")
        return _user(row)

    @staticmethod
    def _check_locks_in(db: sqlite3.Connection, keys: builtins.list[str], now: float) -> None:
        rows = db.execute(f"SELECT * FROM login_failures WHERE key IN "
                          f"({','.join('?' * len(keys))})", keys).fetchall()
        wait = max((r["locked_until"] - now for r in rows), default=0.0)
        if wait > 0:
            raise LockedOutError(f"too many failed logins: try again in {_words(wait)}",
                                 retry_after_s=wait)

    @staticmethod
    def _fail_in(db: sqlite3.Connection, key: str, now: float) -> None:
        row = db.execute("SELECT * FROM login_failures WHERE key=?", (key,)).fetchone()
        failures = 1
        if row is not None and now - row["last_at"] < FORGET_AFTER_S:
            failures = row["failures"] + 1
        locked = now + lockout_s(failures) if lockout_s(failures) else 0.0
        db.execute("INSERT INTO login_failures (key, failures, locked_until, last_at)"
                   " VALUES (?,?,?,?) ON CONFLICT(key) DO UPDATE SET failures=excluded.failures,"
                   " locked_until=excluded.locked_until, last_at=excluded.last_at",
                   (key, failures, locked, now))

    @staticmethod
    def _unfail_in(db: sqlite3.Connection, key: str) -> None:
        # Take back the failure counted up front for an attempt that succeeded, halve the
        # rest.
        # (and the lock it may have set; earlier failures still count toward the next).
        db.execute("UPDATE login_failures SET failures=(failures-1)/2, locked_until=0"
                   " WHERE key=?", (key,))
        db.execute("DELETE FROM login_failures WHERE key=? AND failures<=0", (key,))

    @staticmethod
    def _row(db: sqlite3.Connection, name: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM users WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no account {name!r}")
        return row


def _words(seconds: float) -> str:
    s = max(1, round(seconds))
    return f"{s} s" if s < 90 else f"{round(s / 60)} min"


def _user(row: sqlite3.Row) -> User:
    return User(name=row["name"], is_admin=bool(row["is_admin"]),
                generation=int(row["generation"]), created_at=row["created_at"])
