"""The catalog's database: connections, transactions and migrations, nothing else.

Many processes (capture, the encoder, the web UI, the sync agent, CLI calls) and
many threads share one SQLite file in WAL mode. Each thread has its own
connection, so a reader never waits for a writer: WAL readers see the last
commit while a write is in progress. Writers in one process take turns on a
lock (no busy-spinning between threads); between processes SQLite's own lock
with a busy timeout decides. Every sqlite3 error leaves here as CatalogError.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from appliance.errors import ApplianceError, CatalogError

log = logging.getLogger(__name__)
BUSY_TIMEOUT_S = 30.0
Migration = str | Callable[[sqlite3.Connection], None]


def utc_now(now: datetime | None = None) -> str:
    """The current time (or `now`, from the box's wall clock) as ISO 8601 UTC with
    milliseconds."""
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")


def catalog_error(e: sqlite3.Error, path: Path) -> CatalogError:
    """A sqlite3 error as a message for people."""
    text = str(e)
    if "disk is full" in text or "disk I/O error" in text:
        return CatalogError(f"the catalog at {path} cannot be written: the disk is full or "
                            "failing; free some space (sync and remove old recordings)")
    if "locked" in text or "busy" in text:
        return CatalogError(f"the catalog at {path} stayed busy for {BUSY_TIMEOUT_S:g} s; "
                            "another process holds it, try again")
    return CatalogError(f"catalog error at {path}: {text}")


class _ThreadState(threading.local):
    conn: sqlite3.Connection | None = None
    depth: int = 0      # nesting of transaction() on this thread
    reading: int = 0    # nesting of read() on this thread


class Database:
    """One SQLite file shared by threads and processes."""

    def __init__(self, path: Path, migrations: list[Migration], *,
                 on_full: Callable[[], bool] | None = None) -> None:
        self.path = path
        self._migrations = migrations
        self._on_full = on_full or (lambda: False)
        self._local = _ThreadState()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._closed = False
        self.migrated_here = False   # True if this object applied migrations (tests, logs)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CatalogError(f"cannot open the catalog at {path}: {e}") from None
        try:
            self._open_first()
        except BaseException:
            self.close()
            raise

    def _open_first(self) -> None:
        try:
            self.migrate()
        except CatalogError as e:
            # A full disk cannot create the -wal/-shm files an opening needs: give back
            # the ballast kept for exactly this, then try once more.
            if "disk is full" in str(e) and self._on_full():
                log.warning("disk full: released the ballast so the catalog can open")
                self._drop_connection()
                self.migrate()
            else:
                raise

    # -- connections ------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (made on first use)."""
        if self._closed:
            raise CatalogError("the catalog is closed")
        conn = self._local.conn
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as e:
            raise catalog_error(e, self.path) from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            self._retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            # REPLACE then fires delete triggers: an audit entry cannot be swapped out.
            conn.execute("PRAGMA recursive_triggers=ON")
        except sqlite3.Error as e:
            conn.close()
            raise catalog_error(e, self.path) from None
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _drop_connection(self) -> None:
        conn, self._local.conn = self._local.conn, None
        if conn is not None:
            with self._all_lock:
                if conn in self._all:
                    self._all.remove(conn)
            conn.close()

    def _retry_busy(self, step: Callable[[], object]) -> None:
        # Switching to WAL needs a moment of exclusive access that a busy timeout does
        # not always cover when many processes open a new file at once.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                step()
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def close(self) -> None:
        """Close every connection this object made (any thread)."""
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write (BEGIN IMMEDIATE ... COMMIT); nested calls join the outer one."""
        state = self._local
        if state.depth:
            state.depth += 1
            try:
                yield self.connection()
            finally:
                state.depth -= 1
            return
        if state.reading:
            raise CatalogError("a catalog write cannot start inside a read")
        with self._write_lock:
            conn = self.connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise catalog_error(e, self.path) from None
            state.depth = 1
            try:
                yield conn
            except BaseException as e:
                state.depth = 0
                self._rollback(conn)
                if isinstance(e, sqlite3.Error):
                    raise catalog_error(e, self.path) from None
                raise
            state.depth = 0
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback(conn)
                raise catalog_error(e, self.path) from None

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for reads; never waits for a writer."""
        state = self._local
        conn = self.connection()
        if state.depth or state.reading:
            state.reading += 1
            try:
                yield conn
            except sqlite3.Error as e:
                raise catalog_error(e, self.path) from None
            finally:
                state.reading -= 1
            return
        try:
            conn.execute("BEGIN")
        except sqlite3.Error as e:
            raise catalog_error(e, self.path) from None
        state.reading = 1
        try:
            yield conn
        except sqlite3.Error as e:
            raise catalog_error(e, self.path) from None
        finally:
            state.reading = 0
            self._rollback(conn)  # nothing was written: ending the read is enough

    # -- migrations ---------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        """The number of migrations applied."""
        with self.read() as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Apply missing migrations once, even with many processes opening at once."""
        target = len(self._migrations)
        if self._check_version(self.schema_version, target):
            return
        with self.transaction() as db:
            # Read again under the write lock: another process may just have migrated.
            current = int(db.execute("PRAGMA user_version").fetchone()[0])
            if self._check_version(current, target):
                return
            for number in range(current + 1, target + 1):
                step = self._migrations[number - 1]
                try:
                    if callable(step):
                        step(db)
                    else:
                        for statement in split_sql(step):
                            db.execute(statement)
                except ApplianceError:
                    raise
                except sqlite3.Error as e:
                    raise CatalogError(f"migration {number} of the catalog failed: {e}") \
                        from None
                db.execute(f"PRAGMA user_version={number}")
            self.migrated_here = True
            log.debug("catalog migrated from schema %d to %d", current, target)

    def _check_version(self, current: int, target: int) -> bool:
        if current > target:
            raise CatalogError(f"the catalog is schema {current}, newer than this vigbox "
                               f"({target}); upgrade vigbox")
        return current == target


def split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements, current = [], []
    for line in script.splitlines():
        current.append(line)
        joined = "\n".join(current).strip()
        if joined.endswith(";") and sqlite3.complete_statement(joined):
            statements.append(joined)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements
