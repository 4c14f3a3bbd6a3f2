"""The catalog's schema as numbered migrations (PRAGMA user_version holds the number).

Append new migrations; never edit one that has shipped. A migration is SQL, or a
function for what SQL alone cannot do (such as hashing the audit log).
"""

from __future__ import annotations

import sqlite3

from appliance.catalog.db import Migration

MIGRATIONS: list[Migration] = [
    # 1: cases with consent scopes, recordings, moments, append-only audit log.
    """
    CREATE TABLE cases (
        code TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        -- ISO date each scope of consent was given; NULL = not given.
        consent_filming TEXT,
        consent_supervision TEXT,
        consent_training TEXT
    );
    CREATE TABLE recordings (
        id TEXT PRIMARY KEY,
        case_code TEXT REFERENCES cases(code),
        started_at TEXT NOT NULL,
        duration_s REAL,
        status TEXT NOT NULL CHECK (status IN
            ('recording', 'finalizing', 'ready', 'recovered', 'failed')),
        origin TEXT NOT NULL CHECK (origin IN ('capture', 'import')),
        dir TEXT NOT NULL,
        path TEXT,
        width INTEGER,
        height INTEGER,
        fps REAL,
        video_frames INTEGER,
        dropped_frames INTEGER,
        audio TEXT,
        problems TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX recordings_status ON recordings(status);
    CREATE TABLE moments (
        id INTEGER PRIMARY KEY,
        recording_id TEXT NOT NULL REFERENCES recordings(id),
        at_s REAL NOT NULL CHECK (at_s >= 0),
        source TEXT NOT NULL CHECK (source IN ('button', 'control', 'ui')),
        tag TEXT,
        note TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX moments_recording ON moments(recording_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
]

MIGRATIONS.append(
    # 2: the encoder's job queue, and the clips and stills it makes.
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('assets', 'clip', 'still', 'film')),
        subject TEXT,
        params TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL CHECK (status IN
            ('queued', 'running', 'done', 'failed', 'cancelled')),
        progress REAL NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
        error TEXT,
        result TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        worker_pid INTEGER,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX jobs_status ON jobs(status, id);
    CREATE TABLE clips (
        id TEXT PRIMARY KEY,
        recording_id TEXT NOT NULL REFERENCES recordings(id),
        moment_id INTEGER REFERENCES moments(id),
        start_s REAL NOT NULL,
        end_s REAL NOT NULL,
        exact INTEGER NOT NULL,
        real_start_s REAL,
        duration_s REAL,
        handles_s REAL NOT NULL DEFAULT 0,
        caption TEXT,
        path TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed', 'cancelled')),
        job_id INTEGER REFERENCES jobs(id),
        created_at TEXT NOT NULL
    );
    CREATE TABLE stills (
        id TEXT PRIMARY KEY,
        recording_id TEXT NOT NULL REFERENCES recordings(id),
        at_s REAL NOT NULL,
        frame INTEGER,
        path TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed', 'cancelled')),
        job_id INTEGER REFERENCES jobs(id),
        created_at TEXT NOT NULL
    );
    -- A review film: clips joined in order, with optional title cards.
    CREATE TABLE films (
        id TEXT PRIMARY KEY,
        clip_ids TEXT NOT NULL,
        titles INTEGER NOT NULL,
        path TEXT,
        duration_s REAL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed', 'cancelled')),
        job_id INTEGER REFERENCES jobs(id),
        created_at TEXT NOT NULL
    );
    -- Review assets of a recording: poster, thumbnail sprite + WebVTT index, waveform.
    CREATE TABLE assets (
        recording_id TEXT PRIMARY KEY REFERENCES recordings(id),
        poster TEXT,
        sprite TEXT,
        vtt TEXT,
        waveform TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed')),
        job_id INTEGER REFERENCES jobs(id),
        updated_at TEXT NOT NULL
    );
    """
)


def _audit_chain_and_leases(db: sqlite3.Connection) -> None:
    """3: the audit log becomes a hash chain that refuses REPLACE; jobs get leases."""
    from appliance.catalog.audit import entry_hash

    db.execute("ALTER TABLE audit ADD COLUMN hash TEXT")
    db.execute("DROP TRIGGER audit_no_update")
    previous = ""
    for row in db.execute("SELECT * FROM audit ORDER BY id").fetchall():
        previous = entry_hash(previous, row)
        db.execute("UPDATE audit SET hash=? WHERE id=?", (previous, row["id"]))
    for statement in (
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
        " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
        # Without recursive triggers, INSERT OR REPLACE deletes silently: refuse any
        # insert that names an id already used.
        "CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit"
        " WHEN NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM audit WHERE id = NEW.id)"
        " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
        # A job is owned by one runner for a lease that runs on CLOCK_BOOTTIME of one
        # boot: neither a reused PID nor a clock set forward can confuse it.
        "ALTER TABLE jobs ADD COLUMN owner TEXT",
        "ALTER TABLE jobs ADD COLUMN lease_boot TEXT",
        "ALTER TABLE jobs ADD COLUMN lease_until REAL",
        "ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX clips_recording ON clips(recording_id)",
        "CREATE INDEX stills_recording ON stills(recording_id)",
        "CREATE INDEX clips_job ON clips(job_id)",
        "CREATE INDEX stills_job ON stills(job_id)",
        "CREATE INDEX films_job ON films(job_id)",
    ):
        db.execute(statement)


MIGRATIONS.append(_audit_chain_and_leases)

MIGRATIONS.append(
    # 4: accounts for the tablet UI, failed-login throttling, the tag scheme, and moments
    # with an out point (a span marked in review) and an editable tag and note.
    """
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        pw_hash TEXT NOT NULL,
        is_admin INTEGER NOT NULL DEFAULT 0,
        -- Bumped on every passphrase change: sessions signed before it end.
        generation INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    -- Failed logins per account ('user:NAME') and per client ('client:ADDRESS').
    CREATE TABLE login_failures (
        key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        locked_until REAL NOT NULL DEFAULT 0,
        last_at REAL NOT NULL
    );
    -- Sessions of the tablet UI: the cookie names a row, so logout, a removed account
    -- or a new passphrase end them on the box, whatever a copied cookie says.
    CREATE TABLE web_sessions (
        id TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        created REAL NOT NULL,
        seen REAL NOT NULL
    );
    CREATE INDEX web_sessions_user ON web_sessions(user);
    CREATE TABLE tags (
        id INTEGER PRIMARY KEY,
        label TEXT NOT NULL UNIQUE,
        position INTEGER NOT NULL,
        retired INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO tags (label, position) VALUES
        ('Being attentive', 1), ('Encouraging initiatives', 2), ('Receiving initiatives', 3),
        ('Developing attuned interactions', 4), ('Guiding', 5), ('Deepening discussion', 6);
    ALTER TABLE moments ADD COLUMN end_s REAL;
    ALTER TABLE moments ADD COLUMN updated_at TEXT;
    """
)

MIGRATIONS.append(
    # 5: what a case's next shared review shows, in order; a recording is an interaction
    # filmed at home or a filmed shared review (for supervision).
    """
    CREATE TABLE review_items (
        case_code TEXT NOT NULL REFERENCES cases(code),
        position INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('clip', 'still')),
        item_id TEXT NOT NULL,
        caption TEXT,   -- words for the parent beside the picture (and on the stills sheet)
        PRIMARY KEY (case_code, position)
    );
    ALTER TABLE recordings ADD COLUMN kind TEXT NOT NULL DEFAULT 'interaction'
        CHECK (kind IN ('interaction', 'review'));
    -- What happened while a shared review was filmed, at its time in that recording, so a
    -- supervisor can jump from "clip 2 shown" to that moment of the conversation.
    CREATE TABLE review_events (
        id INTEGER PRIMARY KEY,
        recording_id TEXT NOT NULL REFERENCES recordings(id),
        at_s REAL NOT NULL CHECK (at_s >= 0),
        event TEXT NOT NULL CHECK (event IN
            ('shown', 'play', 'pause', 'speed', 'step')),
        item_kind TEXT,
        item_id TEXT,
        detail TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX review_events_recording ON review_events(recording_id, at_s);
    """
)

MIGRATIONS.append(
    # 6: settings an administrator changed on the box (from the tablet or `vigbox settings`);
    # each row overrides one config key; the value is JSON.
    """
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT NOT NULL
    );
    """
)

MIGRATIONS.append(
    # 7: sync to the office. Each file the box sends (a clip, still, review film, recording
    # or manifest, sealed with age into the outbox) is one row, from planned to verified at
    # the office; an S3 multipart upload keeps its id and parts here so a later run resumes
    # it. sync_state holds the destination's condition (last good sync, why sync stopped).
    # A case can be closed (its raw recordings then expire) and erased on the family's
    # request (its local media goes; the office is told).
    """
    CREATE TABLE sync_items (
        id INTEGER PRIMARY KEY,
        recording_id TEXT,
        case_code TEXT,
        kind TEXT NOT NULL CHECK (kind IN
            ('clip', 'still', 'film', 'recording', 'manifest', 'erasure')),
        item_id TEXT NOT NULL,
        remote_name TEXT NOT NULL UNIQUE,
        plain_size INTEGER,
        plain_sha256 TEXT,
        sealed_path TEXT,
        sealed_size INTEGER,
        sealed_sha256 TEXT,
        status TEXT NOT NULL CHECK (status IN ('planned', 'sealed', 'verified', 'dropped')),
        sent_bytes INTEGER NOT NULL DEFAULT 0,
        resent_bytes INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        multipart_id TEXT,
        parts TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        verified_at TEXT
    );
    CREATE INDEX sync_items_status ON sync_items(status, next_try_at);
    CREATE INDEX sync_items_item ON sync_items(kind, item_id);
    CREATE TABLE sync_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    ALTER TABLE cases ADD COLUMN closed_at TEXT;
    ALTER TABLE cases ADD COLUMN erased_at TEXT;
    """
)
