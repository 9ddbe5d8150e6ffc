"""
Where accounts live: ``IAccountStore``, with ``SQLiteAccountStore`` keeping
them in ``accounts.sqlite3`` under the data directory and
``MemoryAccountStore`` for tests.  ``chatd.cluster.accounts`` keeps them in
Redis behind the same interface.
"""

import os
import sqlite3
import threading
import time

from zope.interface import Attribute, Interface, implementer

from chatd import grammar

STORE_FILE = "accounts.sqlite3"
KNOWN_ADDRESSES = 8  # addresses remembered per account, the most recent


class AccountExists(Exception):
    pass


class IAccountStore(Interface):
    """
    Accounts by name key.  ``registered`` is called on the reactor thread
    and must be fast (a local set; the Redis store keeps it fresh by
    pub/sub).  The rest, for a ``blocking`` store, may block and run in a
    worker thread; otherwise they run on the reactor and may answer with a
    ``Deferred`` (``known`` too).
    """

    blocking = Attribute("Whether the slow calls block (and so run in a worker thread).")

    def registered(key):
        """
        Whether an account with this name key exists.
        """

    def get(key):
        """
        ``(name, password_hash)`` for the key, or ``None``.
        """

    def create(name, password_hash):
        """
        Add an account; ``AccountExists`` if the name key is taken.
        """

    def set_hash(key, password_hash):
        """
        Replace an account's password hash.
        """

    def known(key, address):
        """
        Whether ``address`` logged in to the account before (on the reactor
        thread: fast, like ``registered``, for a ``blocking`` store).
        """

    def remember(key, address):
        """
        ``address`` logged in to the account: keep it (the most recent few).
        """

    def set_operator(key, operator):
        """
        Make the account an operator (``operator`` true) or not; returns
        the name, or ``None`` if there is no such account.
        """

    def is_operator(key):
        """
        Whether the account is an operator.
        """

    def close():
        pass


class KnownAddresses:
    """
    The address keys each account last logged in from, in memory: the
    most recent ``limit`` per account.
    """

    def __init__(self, limit=KNOWN_ADDRESSES):
        self.limit = limit
        self._by_key = {}  # name key -> dict of address -> None, oldest first

    def __contains__(self, pair):
        key, address = pair
        return address in self._by_key.get(key, ())

    def add(self, key, address):
        """
        Remember ``address`` for ``key``; the addresses forgotten.
        """
        addresses = self._by_key.setdefault(key, {})
        addresses.pop(address, None)
        addresses[address] = None
        forgotten = []
        while len(addresses) > self.limit:
            oldest = next(iter(addresses))
            del addresses[oldest]
            forgotten.append(oldest)
        return forgotten


@implementer(IAccountStore)
class MemoryAccountStore:
    blocking = True

    def __init__(self):
        self._accounts = {}
        self._known = KnownAddresses()
        self._operators = set()

    def known(self, key, address):
        return (key, address) in self._known

    def remember(self, key, address):
        self._known.add(key, address)

    def registered(self, key):
        return key in self._accounts

    def get(self, key):
        return self._accounts.get(key)

    def create(self, name, password_hash):
        key = grammar.name_key(name)
        if key in self._accounts:
            raise AccountExists(name)
        self._accounts[key] = (name, password_hash)

    def set_hash(self, key, password_hash):
        name, _ = self._accounts[key]
        self._accounts[key] = (name, password_hash)

    def set_operator(self, key, operator):
        if key not in self._accounts:
            return None
        (self._operators.add if operator else self._operators.discard)(key)
        return self._accounts[key][0]

    def is_operator(self, key):
        return key in self._operators

    def close(self):
        pass


@implementer(IAccountStore)
class SQLiteAccountStore:
    """
    One SQLite file, made at the first registration; one connection shared
    by the worker threads under a lock (the calls are short next to a hash).
    """

    blocking = True

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        self._db = None
        self._keys = set()
        self._known = KnownAddresses()
        if os.path.exists(path):
            self._open()
            self._keys = {row[0] for row in self._db.execute("SELECT key FROM accounts")}
            for key, address in self._db.execute(
                    "SELECT key, address FROM known_addresses ORDER BY seen"):
                self._known.add(key, address)

    def _open(self):
        if self._db is None:
            self._db = sqlite3.connect(self.path, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS accounts ("
                " key TEXT PRIMARY KEY, name TEXT NOT NULL,"
                " hash TEXT NOT NULL, created REAL NOT NULL)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS known_addresses ("
                " key TEXT NOT NULL, address TEXT NOT NULL, seen REAL NOT NULL,"
                " PRIMARY KEY (key, address))")
            self._db.execute("CREATE TABLE IF NOT EXISTS operators (key TEXT PRIMARY KEY)")
        return self._db

    @classmethod
    def in_directory(cls, directory):
        os.makedirs(directory, exist_ok=True)
        return cls(os.path.join(directory, STORE_FILE))

    def registered(self, key):
        return key in self._keys

    def get(self, key):
        with self._lock:
            if self._db is None:
                return None
            row = self._db.execute(
                "SELECT name, hash FROM accounts WHERE key = ?", (key,)).fetchone()
        return tuple(row) if row else None

    def create(self, name, password_hash):
        key = grammar.name_key(name)
        with self._lock:
            try:
                self._open().execute(
                    "INSERT INTO accounts (key, name, hash, created) VALUES (?, ?, ?, ?)",
                    (key, name, password_hash, time.time()))
            except sqlite3.IntegrityError:
                raise AccountExists(name)
            self._keys.add(key)

    def set_hash(self, key, password_hash):
        with self._lock:
            self._open().execute("UPDATE accounts SET hash = ? WHERE key = ?",
                             (password_hash, key))

    def known(self, key, address):
        return (key, address) in self._known

    def remember(self, key, address):
        with self._lock:
            db = self._open()
            db.execute("INSERT OR REPLACE INTO known_addresses (key, address, seen)"
                       " VALUES (?, ?, ?)", (key, address, time.time()))
            for forgotten in self._known.add(key, address):
                db.execute("DELETE FROM known_addresses WHERE key = ? AND address = ?",
                           (key, forgotten))

    def set_operator(self, key, operator):
        with self._lock:
            db = self._open()
            row = db.execute("SELECT name FROM accounts WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            if operator:
                db.execute("INSERT OR IGNORE INTO operators (key) VALUES (?)", (key,))
            else:
                db.execute("DELETE FROM operators WHERE key = ?", (key,))
            return row[0]

    def is_operator(self, key):
        with self._lock:
            return self._open().execute(
                "SELECT 1 FROM operators WHERE key = ?", (key,)).fetchone() is not None

    def close(self):
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
