"""
``RedisAccountStore``: the cluster's accounts in Redis, behind
``IAccountStore`` (not ``blocking``: its calls answer with Deferreds on the
reactor; the hashing stays on the hashing threads).

``registered`` stays a fast local lookup: every node keeps the set of
account name keys, loaded when its link comes up (after it subscribed, so
nothing is missed) and told of each new account by the ``account`` bus
message that the creating script publishes in the same step.  Creation is
one Lua script, so two nodes registering one name race to exactly one
winner.  A record in Redis that no node wrote (a wrong type, a name that
is not its key, a missing hash) is refused with a clear answer and logged.
"""

import time

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from chatd import grammar
from chatd.accounts.store import KNOWN_ADDRESSES, AccountExists, IAccountStore
from chatd.cluster import account_scripts as scripts
from chatd.cluster import bus
from chatd.cluster.link import refused
from chatd.grammar import ChatError


def damaged(name):
    return ChatError(f"the account {name} cannot be read; an operator must repair it")


@implementer(IAccountStore)
class RedisAccountStore:
    """
    Accounts in the Redis of the ``ClusterHub`` given to ``attach`` (before
    the daemon starts).
    """

    blocking = False
    log = Logger()

    def __init__(self):
        self.hub = None
        self.keys = None
        self._keys = set()  # every account's name key, as last loaded and told

    def attach(self, hub):
        """
        Keep the accounts in ``hub``'s Redis, loaded at each link up.
        """
        self.hub = hub
        self.keys = scripts.AccountKeys(hub.keys.prefix)
        hub.accounts = self

    # --- kept fresh from Redis ------------------------------------------------

    def link_up(self):
        """
        The link is (back) up: load every account's name key.
        """
        d = self._call("smembers", self.keys.accounts)
        d.addCallback(self._loaded)
        d.addErrback(lambda f: self.log.warn("account names not loaded: {why}",
                                             why=f.getErrorMessage()))
        return d

    def _loaded(self, keys):
        loaded = set()
        for key in keys or ():
            if isinstance(key, str) and _is_key(key):
                loaded.add(key)
            else:
                self.log.warn("skipped a malformed account key in redis: {key!r}",
                              key=str(key)[:80])
        self._keys |= loaded  # (accounts are never removed; one heard meanwhile stays)
        self.log.info("{count} accounts known from redis", count=len(loaded))

    def heard(self, name):
        """
        Another node made the account ``name`` (from the bus: checked).
        """
        self._keys.add(grammar.name_key(name))

    # --- IAccountStore ------------------------------------------------------

    def registered(self, key):
        return key in self._keys

    def known(self, key, address):
        d = self.eval(scripts.KNOWN, [self.keys.known(key)], address)
        return d.addCallback(lambda answer: str(answer) == "1")

    def get(self, key):
        d = self._call("hmget", self.keys.account(key), ["name", "hash"])
        return d.addCallback(self._account, key)

    def _account(self, fields, key):
        name, password_hash = (list(fields or []) + [None, None])[:2]
        if name is None and password_hash is None:
            return None
        if not (isinstance(name, str) and _is_key(grammar.name_key(name))
                and grammar.name_key(name) == key and isinstance(password_hash, str)
                and password_hash):
            self.log.warn("account record for {key} in redis is malformed", key=key)
            raise damaged(key)
        self._keys.add(key)
        return name, password_hash

    def create(self, name, password_hash):
        key = grammar.name_key(name)
        message = bus.encode(self.hub.node, "account", name=name)
        d = self.eval(scripts.CREATE, [self.keys.account(key), self.keys.accounts,
                                       self.keys.lobby],
                      key, name, password_hash, repr(time.time()), message)

        def made(answer):
            self._keys.add(key)  # ours, or another node's (its message may be on its way)
            if int(answer) != 1:
                raise AccountExists(name)
        return d.addCallback(made)

    def set_hash(self, key, password_hash):
        return self.eval(scripts.SET_HASH, [self.keys.account(key)], password_hash)

    def remember(self, key, address):
        return self.eval(scripts.REMEMBER, [self.keys.known(key)], address,
                         repr(time.time()), KNOWN_ADDRESSES)

    def set_operator(self, key, operator):
        return self.eval(scripts.SET_OPERATOR, [self.keys.account(key)], int(bool(operator)))

    def is_operator(self, key):
        d = self._call("hget", self.keys.account(key), "operator")
        return d.addCallback(lambda flag: flag == "1")

    def close(self):
        pass

    # --- Redis ----------------------------------------------------------------

    def eval(self, script, keys, *args):
        return self._call("eval", script, keys, [str(a) for a in args])

    def _call(self, method, *args):
        """
        A Redis command through the hub's link: a ``Deferred``, failing with
        ``ChatError`` when the link is down or the record is not what a
        node writes.
        """
        if self.hub is None:
            return defer.fail(ChatError("accounts are not ready yet; try again in a moment"))
        d = self.hub.link.call(method, *args)
        d.addErrback(self.hub._link_failed)
        return d.addErrback(refused, self.log, "an account",
                            "an account record cannot be read; an operator must repair it")


def _is_key(key):
    try:
        grammar.check_name(key)
    except ChatError:
        return False
    return key == grammar.name_key(key)
