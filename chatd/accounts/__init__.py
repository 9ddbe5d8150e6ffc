"""
Registered names with passwords, on ``twisted.cred``, one job a module:

- ``store``: ``IAccountStore``; ``SQLiteAccountStore`` keeps accounts in
  ``accounts.sqlite3`` under the data directory (``MemoryAccountStore``
  for tests).
- ``hashing``: the argon2id ``Hasher``.
- ``cred``: ``AccountChecker``/``ChatRealm``, the cred checker over the
  store and the realm handing out ``Account`` avatars.
- ``limiter``: the brute-force ``LoginLimiter`` and the ``RegisterLimiter``.
- ``facade``: ``Accounts`` puts the checker behind a ``Portal`` and adds
  registration, password changes and the limiter.
- ``service``: ``AccountsService``, the daemon's hashing threads, behind
  the bounded two-lane ``HashQueue``.

Every hash and store call runs through ``run(f, *args) -> Deferred``: a
thread pool in the daemon (so a slow hash never stalls chat), synchronous in
unit tests.  Time comes from a clock passed in.  Passwords are never logged.
"""

from chatd.accounts.cred import (
    Account, AccountChecker, AddressedPassword, ChatRealm, IChatAccount,
)
from chatd.accounts.facade import MAX_PASSWORD, MIN_PASSWORD, Accounts, check_password
from chatd.accounts.hashing import Hasher
from chatd.accounts.limiter import (
    FAILURES, REGISTER_WINDOW, REGISTRATIONS, WINDOW, LoginLimiter, RegisterLimiter,
)
from chatd.accounts.service import BUSY, HASH_THREADS, AccountsService, HashQueue
from chatd.accounts.store import (
    STORE_FILE, AccountExists, IAccountStore, MemoryAccountStore, SQLiteAccountStore,
)

__all__ = [
    "Account", "AccountChecker", "AddressedPassword", "AccountExists", "Accounts",
    "AccountsService", "BUSY", "HashQueue", "REGISTER_WINDOW", "REGISTRATIONS",
    "RegisterLimiter",
    "ChatRealm", "FAILURES", "HASH_THREADS", "Hasher", "IAccountStore",
    "IChatAccount", "LoginLimiter", "MAX_PASSWORD", "MIN_PASSWORD",
    "MemoryAccountStore", "SQLiteAccountStore", "STORE_FILE", "WINDOW",
    "check_password",
]
