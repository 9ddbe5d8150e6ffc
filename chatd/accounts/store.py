"""
Where accounts live: ``IAccountStore``, with ``SQLiteAccountStore`` keeping
them in ``accounts.sqlite3`` under the data directory and
``MemoryAccountStore`` for tests.  A Redis store can stand in behind the
same interface.
"""

import os
import sqlite3
import threading
import time

from zope.interface import Interface, implementer

from chatd import grammar

STORE_FILE = "accounts.sqlite3"


class AccountExists(Exception):
    pass


class IAccountStore(Interface):
    """
    Accounts by name key.  ``registered`` is called on the reactor thread
    and must be fast (a local set; a Redis store would keep it fresh by
    pub/sub); the rest may block and runs in a worker thread.
    """

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

    def close():
        pass


@implementer(IAccountStore)
class MemoryAccountStore:
    def __init__(self):
        self._accounts = {}

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

    def close(self):
        pass


@implementer(IAccountStore)
class SQLiteAccountStore:
    """
    One SQLite file, made at the first registration; one connection shared
    by the worker threads under a lock (the calls are short next to a hash).
    """

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        self._db = None
        self._keys = set()
        if os.path.exists(path):
            self._open()
            self._keys = {row[0] for row in self._db.execute("SELECT key FROM accounts")}

    def _open(self):
        if self._db is None:
            self._db = sqlite3.connect(self.path, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS accounts ("
                " key TEXT PRIMARY KEY, name TEXT NOT NULL,"
                " hash TEXT NOT NULL, created REAL NOT NULL)")
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

    def close(self):
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
