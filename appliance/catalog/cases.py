"""Cases: pseudonymous codes with the family's consent, scope by scope, each with a date."""

from __future__ import annotations

import enum
import re
import sqlite3
from dataclasses import dataclass
from datetime import date
from typing import Any

from appliance.catalog.audit import AuditLog
from appliance.catalog.db import Database, utc_now
from appliance.errors import InputError, NotFoundError

# Pseudonymous codes only: capitals, digits and hyphens, with at least one digit,
# so a family name cannot be typed in by mistake.
CASE_CODE_RE = re.compile(r"^(?=.*[0-9])[A-Z0-9][A-Z0-9-]{2,31}$")


class Consent(enum.StrEnum):
    """What a family may consent to, each separately."""

    FILMING = "filming"
    SUPERVISION = "supervision"
    TRAINING = "training"


CONSENT_SCOPES = tuple(c.value for c in Consent)


def check_case_code(code: str) -> str:
    """Return `code` if it is a valid pseudonymous case code, else raise InputError."""
    if not isinstance(code, str) or not CASE_CODE_RE.fullmatch(code):
        # fullmatch: `$` alone would let a trailing "\n" through.
        raise InputError(
            f"case code {code!r} is not valid: use 3-32 capital letters, digits and hyphens "
            "with at least one digit (e.g. VIG-2026-014), never a family name")
    return code


def check_scope(scope: str) -> Consent:
    """The consent scope named, or InputError listing the scopes."""
    try:
        return Consent(scope)
    except ValueError:
        raise InputError(f"unknown consent scope {scope!r}; use {', '.join(CONSENT_SCOPES)}") \
            from None


def check_consent_date(scope: str, when: str) -> str:
    """`when` if it is a real YYYY-MM-DD date, else InputError."""
    try:
        date.fromisoformat(when)
    except (TypeError, ValueError):
        raise InputError(f"consent date {when!r} for {scope} is not YYYY-MM-DD") from None
    if len(when) != 10:
        raise InputError(f"consent date {when!r} for {scope} is not YYYY-MM-DD")
    return when


@dataclass(frozen=True)
class Case:
    """A case and the date each scope of consent was given (absent: not given)."""

    code: str
    created_at: str
    consent: dict[Consent, str]
    closed_at: str | None = None   # the work with the family ended: raw recordings expire
    erased_at: str | None = None   # erased on the family's request: nothing is kept or sent

    def allows(self, scope: Consent) -> bool:
        """True if consent to `scope` is on record."""
        return scope in self.consent

    def to_json(self) -> dict[str, Any]:
        """Plain data: code, created_at, and consent as {scope: date}."""
        return {"code": self.code, "created_at": self.created_at,
                "consent": {str(s): d for s, d in sorted(self.consent.items())},
                "closed_at": self.closed_at, "erased_at": self.erased_at}


class Cases:
    """The cases table."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    def add(self, code: str, consent: dict[Consent, str], *, actor: str) -> Case:
        """Register a case with the consent scopes given (scope → date)."""
        check_case_code(code)
        consent = {check_scope(scope): when for scope, when in consent.items()}
        for scope, when in consent.items():
            check_consent_date(scope, when)
        with self._db.transaction() as db:
            if db.execute("SELECT 1 FROM cases WHERE code=?", (code,)).fetchone():
                raise InputError(f"case {code} already exists")
            db.execute(
                "INSERT INTO cases (code, created_at, consent_filming, consent_supervision,"
                " consent_training) VALUES (?,?,?,?,?)",
                (code, utc_now(), *(consent.get(s) for s in Consent)))
            self._audit.append_in(db, "case.add", code, actor=actor,
                                  detail={"consent": sorted(str(s) for s in consent)})
        return self.get(code)

    def set_consent(self, code: str, changes: dict[Consent, str | None], *,
                    actor: str) -> Case:
        """Record consent given (a date) or withdrawn (None) for scopes of a case."""
        changes = {check_scope(scope): when for scope, when in changes.items()}
        for scope, when in changes.items():
            if when is not None:
                check_consent_date(scope, when)
        with self._db.transaction() as db:
            self._row(db, code)
            for scope, when in changes.items():
                db.execute(f"UPDATE cases SET consent_{Consent(scope).value}=? WHERE code=?",
                           (when, code))
            self._audit.append_in(
                db, "case.consent", code, actor=actor,
                detail={"given": sorted(str(s) for s, w in changes.items() if w),
                        "withdrawn": sorted(str(s) for s, w in changes.items() if w is None)})
        return self.get(code)

    def close(self, code: str, *, actor: str) -> Case:
        """The work with the family has ended: from now its raw recordings expire
        (sync.raw_keep_days) once what is due from them is at the office."""
        with self._db.transaction() as db:
            row = self._row(db, code)
            if row["closed_at"] is None:
                db.execute("UPDATE cases SET closed_at=? WHERE code=?", (utc_now(), code))
                self._audit.append_in(db, "case.close", code, actor=actor)
        return self.get(code)

    def mark_erased(self, code: str, *, actor: str) -> Case:
        """The family asked for the case to be erased: from this moment nothing of it is
        sent or shown (its media and rows are removed next, then the office is told)."""
        with self._db.transaction() as db:
            row = self._row(db, code)
            if row["erased_at"] is None:
                db.execute("UPDATE cases SET erased_at=?, consent_filming=NULL,"
                           " consent_supervision=NULL, consent_training=NULL WHERE code=?",
                           (utc_now(), code))
                self._audit.append_in(db, "case.erase", code, actor=actor)
        return self.get(code)

    def get(self, code: str) -> Case:
        """One case; NotFoundError if there is none."""
        with self._db.read() as db:
            return _case(self._row(db, code))

    def list(self) -> list[Case]:
        """All cases, by code."""
        with self._db.read() as db:
            return [_case(r) for r in db.execute("SELECT * FROM cases ORDER BY code")]

    @staticmethod
    def _row(db: sqlite3.Connection, code: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM cases WHERE code=?", (code,)).fetchone()
        if row is None:
            raise NotFoundError(f"no case {code!r}; add it with `vigbox cases add {code}`")
        return row


def _case(row: sqlite3.Row) -> Case:
    return Case(code=row["code"], created_at=row["created_at"],
                consent={s: row[f"consent_{s.value}"] for s in Consent
                         if row[f"consent_{s.value}"]},
                closed_at=row["closed_at"], erased_at=row["erased_at"])
