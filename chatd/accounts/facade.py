"""
``Accounts``: registration, login and password changes for the protocol,
over a ``Portal``, the store, the hasher and the ``LoginLimiter``.
"""

from twisted.cred import error, portal
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd import grammar
from chatd.accounts.cred import AccountChecker, AddressedPassword, ChatRealm, IChatAccount
from chatd.accounts.limiter import LoginLimiter, RegisterLimiter
from chatd.accounts.steps import Steps, hashing, storing
from chatd.accounts.store import AccountExists
from chatd.grammar import ChatError

MIN_PASSWORD = 6
MAX_PASSWORD = 256


def check_password(password):
    if len(password) < MIN_PASSWORD:
        raise ChatError(f"password must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ChatError(f"password must be at most {MAX_PASSWORD} characters")
    return password


def account_name(name):
    """
    ``name`` if an account could have it, else ``ChatError``.
    """
    grammar.check_name(name)
    if grammar.is_guest_name(name):
        raise ChatError(f"guest names cannot be registered: {name}")
    return name


class Accounts:
    """
    Registration, login and password changes for the protocol: each returns
    a ``Deferred``, failing with ``ChatError`` (a clear one-line answer).
    """

    log = Logger()

    def __init__(self, store, hasher, run, clock, allow_register=True,
                 require_login=False, limiter=None, run_register=None):
        """
        ``run`` runs logins and password changes, ``run_register`` (default:
        ``run``) registrations, each ``(f, *args) -> Deferred``; the store
        may answer its slow calls with Deferreds (see ``steps``).
        """
        self.store = store
        self.hasher = hasher
        self.run = run
        self.steps = Steps(store, run)
        self.steps_register = Steps(store, run_register or run)
        self.allow_register = allow_register
        self.require_login = require_login
        self.limiter = limiter or LoginLimiter(clock)
        self.registrations = RegisterLimiter(clock)
        self.portal = portal.Portal(ChatRealm(), [AccountChecker(store, hasher, run)])

    def registered(self, name):
        return self.store.registered(grammar.name_key(name))

    def store_call(self, f, *args):
        """
        ``f(*args)``, one of the store's slow calls: a ``Deferred``.
        """
        return self.steps.store_call(f, *args)

    def login(self, name, password, address):
        """
        The account's registered name, once ``password`` is right.  The
        name's form is checked first (no hash for a name no account can
        have); then the attempt takes its place in the lock-out.
        """
        try:
            account_name(name)
        except ChatError:
            return defer.fail()
        key = grammar.name_key(name)
        d = defer.maybeDeferred(self.store.known, key, address)
        d.addCallback(lambda known: self.limiter.begin(key, address, known=known))
        return d.addCallback(self._check, name, password, address)

    def _check(self, token, name, password, address):
        key = grammar.name_key(name)
        d = self.portal.login(AddressedPassword(name, password, address),
                              None, IChatAccount)

        def succeeded(result):
            self.limiter.end(token, failed=False)
            _, avatar, _ = result
            return avatar.name

        def failed(failure):
            if not failure.check(error.UnauthorizedLogin):
                self.limiter.end(token, failed=False)
                return failure
            self.limiter.end(token, failed=True)
            self.log.info("failed login for {name} from {address}",
                          name=name, address=address)
            if not self.store.registered(key):
                raise ChatError(f"no account called {name} "
                                f"(/register {name} PASSWORD makes one)")
            raise ChatError(f"wrong password for {name}")

        return d.addCallbacks(succeeded, failed)

    def register(self, name, password, address=None):
        """
        Make an account; its name, once stored.  ``address`` is remembered
        as the account's first known address.
        """
        if not self.allow_register:
            return defer.fail(ChatError("registration is closed on this server"))
        try:
            account_name(name)
            check_password(password)
        except ChatError:
            return defer.fail()
        if self.store.registered(grammar.name_key(name)):
            return defer.fail(ChatError(
                f"{name} is already registered (/login {name} PASSWORD if it is yours)"))
        try:
            token = self.registrations.begin(address)
        except ChatError:
            return defer.fail()
        d = self.steps_register(self._create, name, password, address)

        def settled(result):
            busy = isinstance(result, Failure) and result.check(ChatError)
            self.registrations.end(token, hashed=not busy)
            return result

        def taken(reason):
            reason.trap(AccountExists)
            raise ChatError(f"{name} is already registered")

        return d.addBoth(settled).addErrback(taken)

    def _create(self, name, password, address):
        yield storing(self.store.create, name, (yield hashing(self.hasher.hash, password)))
        if address is not None:
            yield storing(self.store.remember, grammar.name_key(name), address)
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
        d.addCallback(lambda registered: self.steps(self._set, registered, new))
        return d

    def _set(self, name, password):
        yield storing(self.store.set_hash, grammar.name_key(name),
                      (yield hashing(self.hasher.hash, password)))
        return name
