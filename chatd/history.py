"""
Where the rooms' history is kept: ``IHistoryStore``, and its embedded
implementation in SQLite under ``--data-dir``.

Saying a line never waits on the disk: ``append`` only queues it; every
``interval`` seconds the queue goes to the database in one transaction on a
thread of its own (one connection, used by that one thread), so a
``kill -9`` loses at most the lines of the last interval.  Each room keeps
at most ``keep`` rows; older ones are deleted in the same transaction.  A
database that cannot be read is set aside (renamed) with a log line and a
fresh one started: chat never stops for it.
"""

import os
import sqlite3
import time

from twisted.application import service
from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from zope.interface import Interface, implementer

FILENAME = "history.sqlite3"
INTERVAL = 0.5  # seconds between batches

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    key TEXT PRIMARY KEY, name TEXT NOT NULL, topic TEXT NOT NULL DEFAULT '',
    active REAL NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS lines (
    id INTEGER PRIMARY KEY, room TEXT NOT NULL, at REAL NOT NULL, line TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS lines_by_room ON lines (room, id);
"""


class IHistoryStore(Interface):
    """
    Kept lines and topics of rooms, by room key.
    """

    def load(rooms, count):
        """
        At start, before serving: ``(name, topic, [(time, line), ...])`` of
        the ``rooms`` most recently active rooms, their last ``count`` lines
        oldest first.  The others may be forgotten.
        """

    def append(room, name, when, line):
        """
        Keep ``line``, said in room ``room`` (key; ``name`` as shown) at
        ``when``.  Must not block.
        """

    def set_topic(room, name, topic):
        """
        Keep the topic of a room.  Must not block.
        """

    def forget(room):
        """
        Drop the kept lines and topic of ``room`` (a room made space for
        another).  Must not block.
        """

    def recent(room, count):
        """
        A Deferred of the last ``count`` lines of ``room`` as ``(time,
        line)`` pairs, oldest first, including lines appended but not yet
        written.
        """


@implementer(IHistoryStore)
class SQLiteHistory(service.Service):
    """
    The embedded store: a SQLite file written in batches by one thread.
    """

    log = Logger()

    def __init__(self, path, reactor, keep, interval=INTERVAL):
        self.path = path
        self.reactor = reactor
        self.keep = keep  # rows per room
        self.interval = interval
        self._pending = []  # (room, at, line) not yet handed to the thread
        self._topics = {}  # room -> (name, topic) not yet handed over
        self._names = {}  # room -> name, for rooms pending
        self._forgotten = set()  # rooms whose kept lines go, before this batch's
        self._db = None  # opened and used by the writer thread only
        self._pool = ThreadPool(1, 1, name="chatd-history")
        self._loop = task.LoopingCall(self.flush)
        self._loop.clock = reactor

    @classmethod
    def in_directory(cls, directory, reactor, keep, **kw):
        os.makedirs(directory, exist_ok=True)
        return cls(os.path.join(directory, FILENAME), reactor, keep, **kw)

    # --- reactor thread -----------------------------------------------------

    def startService(self):
        service.Service.startService(self)
        self._pool.start()
        self._loop.start(self.interval, now=False)

    def stopService(self):
        """
        Let the thread finish the batches it has and stop, then write the
        rest here (the thread is gone: the connection is still used by one
        thread at a time) and close.  Blocks for one batch, at shutdown.
        """
        service.Service.stopService(self)
        if self._loop.running:
            self._loop.stop()
        self._pool.stop()
        try:
            if self._pending or self._topics or self._forgotten:
                self._write(*self._take())
        except sqlite3.Error as e:
            self.log.error("writing the last history lines failed: {why}", why=str(e))
        finally:
            self._close()

    def load(self, rooms, count):
        db = self._open()  # the writer thread opens its own later
        try:
            return _load(db, rooms, count)
        finally:
            db.close()

    def append(self, room, name, when, line):
        self._pending.append((room, when, line))
        self._names[room] = name

    def set_topic(self, room, name, topic):
        self._topics[room] = (name, topic)

    def forget(self, room):
        self._pending = [p for p in self._pending if p[0] != room]
        self._topics.pop(room, None)
        self._forgotten.add(room)

    def flush(self):
        """
        Hand what is queued to the writer thread; a Deferred that fires
        when it is written.
        """
        if not self._pending and not self._topics and not self._forgotten:
            return defer.succeed(None)
        d = self._in_thread(self._write, *self._take())
        d.addErrback(lambda f: self.log.failure("writing history failed", f))
        return d

    def _take(self):
        batch = (self._pending, self._names, self._topics, self._forgotten)
        self._pending, self._names, self._topics, self._forgotten = [], {}, {}, set()
        return batch

    def recent(self, room, count):
        self.flush()  # the one thread runs in order: the read sees it
        return self._in_thread(self._recent, room, count)

    def _in_thread(self, f, *args):
        return threads.deferToThreadPool(self.reactor, self._pool, f, *args)

    # --- writer thread ------------------------------------------------------

    def _open(self):
        try:
            return _connect(self.path)
        except sqlite3.DatabaseError as e:
            aside = f"{self.path}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
            self.log.error("history database {path} is unreadable ({why}); set "
                           "aside as {aside}, starting a fresh one",
                           path=self.path, why=str(e), aside=aside)
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.path + suffix):
                    os.replace(self.path + suffix, aside + suffix)
            return _connect(self.path)

    def _database(self):
        if self._db is None:
            self._db = self._open()
        return self._db

    def _close(self):
        if self._db is not None:
            self._db.close()
            self._db = None

    def _write(self, *batch):
        try:
            _write(self._database(), *batch, self.keep)
        except sqlite3.DatabaseError:
            # Broken under us (disk error, file replaced): start afresh once.
            self._close()
            self._db = self._open()
            _write(self._db, *batch, self.keep)

    def _recent(self, room, count):
        rows = self._database().execute(
            "SELECT at, line FROM lines WHERE room = ? ORDER BY id DESC LIMIT ?",
            (room, count)).fetchall()
        return rows[::-1]


def _connect(path):
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a process crash loses nothing committed
        (ok,) = db.execute("PRAGMA quick_check").fetchone()
        if ok != "ok":
            raise sqlite3.DatabaseError(ok)
        db.executescript(SCHEMA)
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db


def _load(db, rooms, count):
    # Rooms past the most recently active ``rooms`` are not served: drop
    # them, so the file stays within rooms x keep rows.
    with db:
        db.execute("BEGIN")
        db.execute("DELETE FROM rooms WHERE key NOT IN "
                   "(SELECT key FROM rooms ORDER BY active DESC LIMIT ?)", (rooms,))
        db.execute("DELETE FROM lines WHERE room NOT IN (SELECT key FROM rooms)")
    saved = []
    for key, name, topic in db.execute(
            "SELECT key, name, topic FROM rooms ORDER BY active DESC LIMIT ?", (rooms,)):
        lines = db.execute(
            "SELECT at, line FROM lines WHERE room = ? ORDER BY id DESC LIMIT ?",
            (key, count)).fetchall()
        saved.append((name, topic, lines[::-1]))
    return saved


def _write(db, lines, names, topics, forgotten, keep):
    with db:  # one transaction
        db.execute("BEGIN")
        for room in forgotten:  # first: lines after it are a new room's
            db.execute("DELETE FROM lines WHERE room = ?", (room,))
            db.execute("DELETE FROM rooms WHERE key = ?", (room,))
        db.executemany("INSERT INTO lines (room, at, line) VALUES (?, ?, ?)", lines)
        active = {}
        for room, at, _ in lines:
            active[room] = at
        for room, at in active.items():
            db.execute("INSERT INTO rooms (key, name, active) VALUES (?, ?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET active = excluded.active",
                       (room, names.get(room, room), at))
            db.execute("DELETE FROM lines WHERE room = ? AND id <= "
                       "(SELECT id FROM lines WHERE room = ? ORDER BY id DESC "
                       "LIMIT 1 OFFSET ?)", (room, room, keep))
        for room, (name, topic) in topics.items():
            db.execute("INSERT INTO rooms (key, name, topic) VALUES (?, ?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET topic = excluded.topic",
                       (room, name, topic))
