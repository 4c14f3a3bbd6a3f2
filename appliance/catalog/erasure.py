"""Erasing a case on the family's request: which files and rows hold it, and removing the
rows in one transaction (moments with their notes, clips, stills, the review films made of
its clips, review choices and events, jobs, recordings). The case row stays, marked erased,
with its pseudonymous code, so the office can be told; the audit log keeps what happened
(it never held notes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from appliance.catalog.audit import AuditLog
from appliance.catalog.db import Database
from appliance.layout import Layout

ACTIVE_JOBS = ("queued", "running")


@dataclass
class ErasePlan:
    """What holds a case on the box."""

    code: str
    recordings: list[str] = field(default_factory=list)
    clips: list[str] = field(default_factory=list)
    stills: list[str] = field(default_factory=list)
    films: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)       # why it cannot be erased now
    files: list[Path] = field(default_factory=list)     # recording folders, films, outbox

    def counts(self) -> dict[str, int]:
        """How much goes, for the audit log and the guider."""
        return {"recordings": len(self.recordings), "clips": len(self.clips),
                "stills": len(self.stills), "films": len(self.films)}


class Erasure:
    """Finds and removes what the catalog holds of a case."""

    def __init__(self, db: Database, audit: AuditLog, layout: Layout) -> None:
        self._db = db
        self._audit = audit
        self._layout = layout

    def plan(self, code: str) -> ErasePlan:
        """Everything of the case on the box, and anything that stops an erase now."""
        plan = ErasePlan(code)
        with self._db.read() as db:
            for r in db.execute("SELECT id, status, dir FROM recordings WHERE case_code=?",
                                (code,)):
                plan.recordings.append(r["id"])
                plan.files.append(self._layout.absolute(r["dir"]))
                if r["status"] in ("recording", "finalizing"):
                    plan.busy.append(f"recording {r['id']} is still being made")
            marks = ",".join("?" * len(plan.recordings))
            if plan.recordings:
                plan.clips = [r["id"] for r in db.execute(
                    f"SELECT id FROM clips WHERE recording_id IN ({marks})", plan.recordings)]
                plan.stills = [r["id"] for r in db.execute(
                    f"SELECT id FROM stills WHERE recording_id IN ({marks})", plan.recordings)]
            clips = set(plan.clips)
            for f in db.execute("SELECT id, clip_ids, path FROM films"):
                if clips & set(json.loads(f["clip_ids"])):
                    plan.films.append(f["id"])
                    if f["path"]:
                        plan.files.append(self._layout.absolute(f["path"]))
            subjects = set(plan.recordings) | clips | set(plan.stills) | set(plan.films)
            for j in db.execute("SELECT id, subject, status FROM jobs WHERE status IN (?,?)",
                                ACTIVE_JOBS):
                if j["subject"] in subjects:
                    plan.busy.append(f"job {j['id']} is rendering {j['subject']}")
            for s in db.execute("SELECT sealed_path FROM sync_items WHERE case_code=? AND"
                                " status IN ('planned', 'sealed') AND sealed_path IS NOT NULL",
                                (code,)):
                plan.files.append(self._layout.outbox / s["sealed_path"])
        return plan

    def remove_rows(self, plan: ErasePlan, *, actor: str) -> None:
        """Remove the case's rows (after its files are gone), in one transaction."""
        recs, media = plan.recordings, plan.clips + plan.stills + plan.films
        with self._db.transaction() as db:
            def delete(table: str, column: str, ids: list[str]) -> None:
                if ids:
                    marks = ",".join("?" * len(ids))
                    db.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)
            delete("review_events", "recording_id", recs)
            db.execute("DELETE FROM review_items WHERE case_code=?", (plan.code,))
            delete("films", "id", plan.films)
            delete("clips", "id", plan.clips)
            delete("stills", "id", plan.stills)
            delete("assets", "recording_id", recs)
            delete("moments", "recording_id", recs)
            delete("jobs", "subject", recs + media)
            delete("recordings", "id", recs)
            db.execute("UPDATE sync_items SET status='dropped', last_error='case erased'"
                       " WHERE case_code=? AND status IN ('planned', 'sealed')", (plan.code,))
            self._audit.append_in(db, "case.erase.done", plan.code, actor=actor,
                                  detail=plan.counts())
