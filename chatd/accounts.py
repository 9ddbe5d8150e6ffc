"""
Registered names with passwords, on ``twisted.cred``.

- ``IAccountStore``: where accounts live; ``SQLiteAccountStore`` keeps them
  in ``accounts.sqlite3`` under the data directory (``MemoryAccountStore``
  for tests).  A Redis store can stand in behind the same interface.
- ``Hasher``: argon2id (argon2-cffi; no length limit, so no prehash), with
  its cost configurable so tests stay fast.
- ``AccountChecker``/``ChatRealm``: the cred checker over the store and the
  realm handing out ``Account`` avatars; ``Accounts`` puts them behind a
  ``Portal`` and adds registration, password changes and the brute-force
  ``LoginLimiter``.

Every hash and store call runs through ``run(f, *args) -> Deferred``: a
thread pool in the daemon (so a slow hash never stalls chat), synchronous in
unit tests.  Time comes from a clock passed in.  Passwords are never logged.
"""

import collections
import os
import sqlite3
import threading
import time
from dataclasses import dataclass

import argon2
from twisted.application.service import Service
from twisted.cred import credentials, error, portal
from twisted.cred.checkers import ICredentialsChecker
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from zope.interface import Attribute, Interface, implementer

from chatd import grammar
from chatd.grammar import ChatError

MIN_PASSWORD = 6
MAX_PASSWORD = 256
FAILURES = 3  # failed logins per name or per address...
WINDOW = 60.0  # ...within this many seconds lock further attempts out
STORE_FILE = "accounts.sqlite3"


# --- storage -----------------------------------------------------------


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


@implementer(IAccountStore)
class MemoryAccountStore:
    def __init__(self):
        self._accounts = {}
        self._operators = set()

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


# --- hashing -----------------------------------------------------------


class Hasher:
    """
    argon2id.  The defences' defaults are RFC 9106's low-memory profile
    (3 passes over 64 MiB); tests pass ``memory_kib=8, time_cost=1``.
    """

    def __init__(self, memory_kib=65536, time_cost=3, parallelism=4):
        parallelism = max(1, min(parallelism, memory_kib // 8))
        self._ph = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism,
            type=argon2.Type.ID)
        self._dummy = None

    def hash(self, password):
        return self._ph.hash(password)

    def verify(self, password_hash, password):
        try:
            return self._ph.verify(password_hash, password)
        except (argon2.exceptions.VerificationError,
                argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, password_hash):
        return self._ph.check_needs_rehash(password_hash)

    def waste(self, password):
        """
        As slow as a real check, for names without an account (so timing
        does not tell whether a password was even compared).
        """
        if self._dummy is None:
            self._dummy = self.hash("no such account")
        self.verify(self._dummy, password)


# --- twisted.cred --------------------------------------------------------


class IChatAccount(Interface):
    name = Attribute("The account's name, as registered.")


@implementer(IChatAccount)
@dataclass(frozen=True)
class Account:
    name: str


@implementer(ICredentialsChecker)
class AccountChecker:
    """
    Checks ``IUsernamePassword`` credentials against the store; the avatar
    id is the account's name as registered.
    """

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, store, hasher, run):
        self.store = store
        self.hasher = hasher
        self.run = run

    def requestAvatarId(self, creds):
        return self.run(self._check, creds.username, creds.password)

    def _check(self, name, password):
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        found = self.store.get(grammar.name_key(name))
        if found is None:
            self.hasher.waste(password)
            raise error.UnauthorizedLogin("no such account")
        registered_name, password_hash = found
        if not self.hasher.verify(password_hash, password):
            raise error.UnauthorizedLogin("wrong password")
        if self.hasher.needs_rehash(password_hash):
            self.store.set_hash(grammar.name_key(name), self.hasher.hash(password))
        return registered_name


@implementer(portal.IRealm)
class ChatRealm:
    def requestAvatar(self, avatarId, mind, *interfaces):
        if IChatAccount not in interfaces:
            raise NotImplementedError("chatd only hands out IChatAccount avatars")
        return IChatAccount, Account(avatarId), lambda: None


# --- brute force -------------------------------------------------------


class LoginLimiter:
    """
    After ``failures`` failed logins for a name, or from an address, within
    ``window`` seconds, refuse further attempts until the oldest of them is
    ``window`` seconds old.  Refused attempts do not count.
    """

    def __init__(self, clock, failures=FAILURES, window=WINDOW):
        self.clock = clock
        self.failures = failures
        self.window = window
        self._recent = {}  # ("name"|"address", key) -> deque of times
        self.failures_total = 0  # failed logins, and attempts refused by a
        self.lockouts_total = 0  # lock-out, since start (for the metrics)

    def _times(self, subject):
        times = self._recent.get(subject)
        if times is None:
            return None
        cutoff = self.clock.seconds() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._recent[subject]
            return None
        return times

    def refusal(self, name_key, address):
        """
        Why an attempt now must be refused, or ``None``.
        """
        for subject, what in ((("name", name_key), f"for {name_key}"),
                              (("address", address), "from your address")):
            times = self._times(subject)
            if times is not None and len(times) >= self.failures:
                wait = max(1, int(times[-self.failures] + self.window
                                  - self.clock.seconds() + 0.999))
                self.lockouts_total += 1
                return (f"too many failed logins {what}; "
                        f"try again in {wait} s")
        return None

    def failed(self, name_key, address):
        self.failures_total += 1
        now = self.clock.seconds()
        if len(self._recent) > 100000:  # an address sweep: forget the stale
            for subject in list(self._recent):
                self._times(subject)
        for subject in (("name", name_key), ("address", address)):
            times = self._recent.setdefault(subject, collections.deque())
            times.append(now)
            while len(times) > self.failures:
                times.popleft()


# --- the whole -----------------------------------------------------------


def check_password(password):
    if len(password) < MIN_PASSWORD:
        raise ChatError(f"password must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ChatError(f"password must be at most {MAX_PASSWORD} characters")
    return password


class Accounts:
    """
    Registration, login and password changes for the protocol: each returns
    a ``Deferred``, failing with ``ChatError`` (a clear one-line answer).
    """

    log = Logger()

    def __init__(self, store, hasher, run, clock, allow_register=True,
                 require_login=False, limiter=None):
        self.store = store
        self.hasher = hasher
        self.run = run
        self.allow_register = allow_register
        self.require_login = require_login
        self.limiter = limiter or LoginLimiter(clock)
        self.portal = portal.Portal(ChatRealm(), [AccountChecker(store, hasher, run)])

    def registered(self, name):
        return self.store.registered(grammar.name_key(name))

    def login(self, name, password, address):
        """
        The account's registered name, once ``password`` is right.
        """
        key = grammar.name_key(name)
        refusal = self.limiter.refusal(key, address)
        if refusal is not None:
            return defer.fail(ChatError(refusal))
        d = self.portal.login(credentials.UsernamePassword(name, password),
                              None, IChatAccount)

        def succeeded(result):
            _, avatar, _ = result
            return avatar.name

        def failed(failure):
            failure.trap(error.UnauthorizedLogin)
            self.limiter.failed(key, address)
            self.log.info("failed login for {name} from {address}",
                          name=name, address=address)
            if not self.store.registered(key):
                raise ChatError(f"no account called {name} "
                                f"(/register {name} PASSWORD makes one)")
            raise ChatError(f"wrong password for {name}")

        return d.addCallbacks(succeeded, failed)

    def register(self, name, password):
        """
        Make an account; its name, once stored.
        """
        if not self.allow_register:
            return defer.fail(ChatError("registration is closed on this server"))
        try:
            grammar.check_name(name)
            if grammar.is_guest_name(name):
                raise ChatError(f"guest names cannot be registered: {name}")
            check_password(password)
        except ChatError:
            return defer.fail()
        if self.store.registered(grammar.name_key(name)):
            return defer.fail(ChatError(
                f"{name} is already registered (/login {name} PASSWORD if it is yours)"))
        d = self.run(self._create, name, password)

        def taken(failure):
            failure.trap(AccountExists)
            raise ChatError(f"{name} is already registered")

        return d.addErrback(taken)

    def _create(self, name, password):
        self.store.create(name, self.hasher.hash(password))
        return name

    def change_password(self, name, old, new, address):
        """
        Check ``old`` like a login, then store ``new``.
        """
        try:
            check_password(new)
        except ChatError:
            return defer.fail()
        d = self.login(name, old, address)
        d.addCallback(lambda registered: self.run(self._set, registered, new))
        return d

    def _set(self, name, password):
        self.store.set_hash(grammar.name_key(name), self.hasher.hash(password))
        return name


# --- the daemon's worker threads ---------------------------------------

HASH_THREADS = 2  # hashes at once; more logins queue, chat never waits


class AccountsService(Service):
    """
    The thread pool that hashes and touches the store, started and stopped
    with the daemon; ``run`` is the ``Accounts`` runner.
    """

    def __init__(self, reactor, store, threads=HASH_THREADS):
        self.reactor = reactor
        self.store = store
        self.pool = ThreadPool(0, threads, "chatd-accounts")

    def run(self, f, *args):
        return deferToThreadPool(self.reactor, self.pool, f, *args)

    def startService(self):
        Service.startService(self)
        self.pool.start()

    def stopService(self):
        Service.stopService(self)
        self.pool.stop()
        self.store.close()
