"""
``twisted.cred`` pieces: the checker over the account store and the realm
handing out ``Account`` avatars.
"""

from dataclasses import dataclass

from twisted.cred import credentials, error, portal
from twisted.cred.checkers import ICredentialsChecker
from zope.interface import Attribute, Interface, implementer

from chatd import grammar
from chatd.accounts.steps import Steps, hashing, storing


class IChatAccount(Interface):
    name = Attribute("The account's name, as registered.")


@implementer(IChatAccount)
@dataclass(frozen=True)
class Account:
    name: str


class AddressedPassword(credentials.UsernamePassword):
    """
    A name and password, with the address key they came from: a success
    is remembered with the account (see ``LoginLimiter``).
    """

    def __init__(self, username, password, address):
        credentials.UsernamePassword.__init__(self, username, password)
        self.address = address


@implementer(ICredentialsChecker)
class AccountChecker:
    """
    Checks ``IUsernamePassword`` credentials against the store; the avatar
    id is the account's name as registered.  For ``AddressedPassword``s,
    a success remembers the address with the account.  The check is a
    generator of ``steps`` (hashes on the threads, store calls where the
    store runs them).
    """

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, store, hasher, run):
        self.store = store
        self.hasher = hasher
        self.steps = Steps(store, run)

    def requestAvatarId(self, creds):
        return self.steps(self._check, creds.username, creds.password,
                          getattr(creds, "address", None))

    def _check(self, name, password, address=None):
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        key = grammar.name_key(name)
        found = yield storing(self.store.get, key)
        if found is None:
            yield hashing(self.hasher.waste, password)
            raise error.UnauthorizedLogin("no such account")
        registered_name, password_hash = found
        if not (yield hashing(self.hasher.verify, password_hash, password)):
            raise error.UnauthorizedLogin("wrong password")
        if self.hasher.needs_rehash(password_hash):
            yield storing(self.store.set_hash, key, (yield hashing(self.hasher.hash, password)))
        if address is not None:
            yield storing(self.store.remember, key, address)
        return registered_name


@implementer(portal.IRealm)
class ChatRealm:
    def requestAvatar(self, avatarId, mind, *interfaces):
        if IChatAccount not in interfaces:
            raise NotImplementedError("chatd only hands out IChatAccount avatars")
        return IChatAccount, Account(avatarId), lambda: None
