"""The catalog: SQLite (WAL) in the data dir, the single source of truth for the box.

`Catalog` opens the database (migrating it once, whoever gets there first) and
offers one object per table family; every write names its actor and is audited
in the same transaction.
"""

from __future__ import annotations

from pathlib import Path

from appliance.catalog.accounts import Accounts, User
from appliance.catalog.assets import Assets, AssetsTable, AssetStatus
from appliance.catalog.audit import AuditEntry, AuditLog
from appliance.catalog.cases import (
    CONSENT_SCOPES,
    Case,
    Cases,
    Consent,
    check_case_code,
    check_scope,
)
from appliance.catalog.db import Database, utc_now
from appliance.catalog.erasure import ErasePlan, Erasure
from appliance.catalog.jobs import Job, JobKind, JobQueue, JobStatus
from appliance.catalog.media import Clip, Film, Media, MediaStatus, Still
from appliance.catalog.moments import Moment, Moments, MomentSource
from appliance.catalog.recordings import (
    INTERRUPTED,
    PLAYABLE,
    Origin,
    Recording,
    Recordings,
    RecordingStatus,
    new_recording_id,
)
from appliance.catalog.review_events import ReviewEvent, ReviewEventRow, ReviewEvents
from appliance.catalog.review_items import ItemKind, ReviewItem, ReviewItems
from appliance.catalog.schema import MIGRATIONS
from appliance.catalog.sessions import Sessions
from appliance.catalog.settings import EDITABLE, Settings
from appliance.catalog.sync_items import SyncItem, SyncItems, SyncKind, SyncStatus
from appliance.catalog.tags import Tag, Tags
from appliance.fsutil import release_ballast
from appliance.layout import Layout

__all__ = [
    "Accounts", "ItemKind", "ReviewEvent", "ReviewEventRow", "ReviewEvents", "ReviewItem",
    "ReviewItems", "ErasePlan", "Erasure", "Sessions", "Settings", "EDITABLE", "SyncItem",
    "SyncItems", "SyncKind", "SyncStatus", "Tag", "Tags", "User",
    "Assets", "AssetsTable", "AssetStatus", "AuditEntry", "AuditLog", "CONSENT_SCOPES", "Case",
    "Cases", "Catalog", "Clip", "Consent", "Film", "INTERRUPTED", "Job", "JobKind", "JobQueue",
    "JobStatus", "Layout", "Media", "MediaStatus", "Moment", "MomentSource", "Moments",
    "Origin", "PLAYABLE", "Recording", "RecordingStatus", "Recordings", "Still",
    "check_case_code", "check_scope", "new_recording_id", "utc_now",
]


class Catalog:
    """The catalog of one data dir; safe to share between threads."""

    def __init__(self, layout: Layout | Path) -> None:
        self.layout = layout if isinstance(layout, Layout) else Layout(Path(layout))
        self.db = Database(self.layout.catalog_db, MIGRATIONS,
                           on_full=lambda: release_ballast(self.layout.ballast))
        self.audit = AuditLog(self.db)
        self.cases = Cases(self.db, self.audit)
        self.recordings = Recordings(self.db, self.audit, self.layout)
        self.moments = Moments(self.db, self.audit)
        self.jobs = JobQueue(self.db, self.audit)
        self.media = Media(self.db, self.jobs, self.layout)
        self.assets = AssetsTable(self.db, self.jobs, self.layout)
        self.accounts = Accounts(self.db, self.audit)
        self.sessions = Sessions(self.db)
        self.review_items = ReviewItems(self.db, self.audit)
        self.review_events = ReviewEvents(self.db)
        self.tags = Tags(self.db, self.audit)
        self.settings = Settings(self.db, self.audit)
        self.sync = SyncItems(self.db, self.audit)
        self.erasure = Erasure(self.db, self.audit, self.layout)

    @property
    def schema_version(self) -> int:
        """The number of migrations applied."""
        return self.db.schema_version

    def close(self) -> None:
        """Close every connection."""
        self.db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
