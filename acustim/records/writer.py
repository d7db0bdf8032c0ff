"""The writer thread: the only code that writes a session's rows to the store (and the rows
entered around sessions: courses, outcomes, adverse events, STRICTA items, each a ``Txn``
whose caller waits for its commit).

One thread owns the write connection (made and migrated by ``schema.connect_writer``). Callers
only put items on its queue, so they never wait for the disk (``Start`` and ``Flush`` carry an
event to wait on if they want to). It takes everything queued at once and commits it in one
transaction (fsync'd), then waits for more: a frame is on disk about one commit after it was
added, and a process killed with SIGKILL loses at most its last frame period.

It never drops a row silently and never dies of a failed commit: the first error (disk full,
file too large, I/O error) is kept in ``error`` as a ``RecordsError`` saying "stop the session",
and nothing is written after it. It knows nothing of the store object, so a store dropped
without ``close()`` can still be flushed by its finalizer; it never reads for a caller.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from acustim.records.errors import RecordsError
from acustim.records.files import DATA_DIR_ENV
from acustim.records.rows import WriterStats
from acustim.records.schema import INSERT_PATIENT, INSERT_SESSION, LINK_SESSION

__all__ = ["Flush", "Item", "Start", "Stop", "Txn", "Write", "Writer"]


@dataclass(frozen=True)
class Write:
    sql: str
    params: tuple[object, ...]


@dataclass
class Start:
    params: tuple[object, ...]
    patient: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    session_id: int | None = None
    #: the treatment course the session joins (as its next number), committed with it
    course: int | None = None


@dataclass
class Txn:
    """Statements committed together whose caller waits (a course, an outcome...); after
    ``done``, ``rowcounts`` and ``lastrowid`` say what each did (empty if it failed)."""

    steps: tuple[tuple[str, tuple[object, ...]], ...]
    done: threading.Event = field(default_factory=threading.Event)
    rowcounts: list[int] = field(default_factory=list)
    lastrowid: int | None = None


@dataclass(frozen=True)
class Flush:
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Stop:
    pass


Item = Write | Start | Txn | Flush | Stop


class Writer:
    """Owns the write connection on its own thread; knows nothing of the store object, so a
    store that is dropped without ``close()`` can still be flushed by its finalizer."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self.error: RecordsError | None = None
        self.stats = WriterStats()
        self._stopping = False
        # Daemon: a store nobody closed must not hang interpreter exit; its finalizer (run at
        # exit too) still commits what was queued.
        self._thread = threading.Thread(
            target=self._run, name=f"acustim-records-writer {path}", daemon=True
        )
        self._thread.start()

    def put(self, item: Item) -> None:
        self._queue.put(item)

    def backlog(self) -> int:
        return self._queue.qsize()

    def stop(self, timeout_s: float) -> bool:
        """Commit what is queued, stop the thread; True if it stopped within the timeout."""
        if not self._stopping:
            self._stopping = True
            self._queue.put(Stop())
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            stop = False
            while not stop:
                batch = [self._queue.get()]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = self._apply(batch)
        finally:
            try:
                self._conn.close()
            except sqlite3.Error as exc:
                self._fail(exc, "could not close the store")

    def _apply(self, batch: list[Item]) -> bool:
        writes = [item for item in batch if isinstance(item, Write | Start | Txn)]
        if writes and self.error is None:
            started_s = time.perf_counter()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                for item in writes:
                    if isinstance(item, Start):
                        if item.patient is not None:
                            self._conn.execute(INSERT_PATIENT, (item.patient, item.params[0]))
                        item.session_id = self._conn.execute(INSERT_SESSION, item.params).lastrowid
                        if item.course is not None:
                            self._conn.execute(LINK_SESSION, (item.course, item.session_id))
                    elif isinstance(item, Txn):
                        for sql, params in item.steps:
                            cursor = self._conn.execute(sql, params)
                            item.rowcounts.append(cursor.rowcount)
                            item.lastrowid = cursor.lastrowid
                    else:
                        self._conn.execute(item.sql, item.params)
                self._conn.execute("COMMIT")
            # The writer must survive anything (a dead writer would lose rows in silence): the
            # error is kept and raised to the caller on its next call.
            except Exception as exc:
                self._rollback()
                for item in writes:
                    if isinstance(item, Start):
                        item.session_id = None
                    elif isinstance(item, Txn):
                        item.rowcounts.clear()
                        item.lastrowid = None
                self._fail(exc, f"could not commit {len(writes)} rows")
            else:
                took_s = time.perf_counter() - started_s
                old = self.stats
                self.stats = WriterStats(
                    batches=old.batches + 1,
                    rows=old.rows + len(writes),
                    last_commit_s=took_s,
                    max_commit_s=max(old.max_commit_s, took_s),
                    total_commit_s=old.total_commit_s + took_s,
                )
        for waiter in batch:
            if isinstance(waiter, Start | Txn | Flush):
                waiter.done.set()
        return any(isinstance(item, Stop) for item in batch)

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            # The first error is the one worth reporting.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _fail(self, exc: Exception, what: str) -> None:
        if self.error is None:
            detail = str(exc).replace("\n", " ") or type(exc).__name__
            self.error = RecordsError(
                f"records store {self._path}: {what} ({detail}); the session record is"
                " incomplete from here on: stop the session, free disk space or fix the"
                f" location (or set {DATA_DIR_ENV}), then start a new session"
            )
