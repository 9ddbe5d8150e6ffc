"""
``RedisLoginLimiter``: ``LoginLimiter``'s lock-out, kept in Redis so that
failed logins on every node add up (a guesser gains nothing by switching
node).  The same rules and answers as on one node; each ``begin`` and
``end`` is one Lua script, so attempts racing on many nodes are counted
like attempts on one.  Time comes from the node's clock (nodes on several
machines must keep their clocks in step, as NTP does).
"""

import uuid

from twisted.logger import Logger

from chatd.accounts.limiter import FAILURES, WINDOW, in_progress, lock_checks, locked_out
from chatd.cluster import account_scripts as scripts


class RedisLoginLimiter:
    """
    At most ``failures`` failed logins per name and per address within
    ``window`` seconds, across the cluster, through ``store`` (a
    ``RedisAccountStore``: its link, keys and errors).  ``begin`` answers
    with a ``Deferred`` of the token for ``end``.
    """

    log = Logger()

    def __init__(self, store, clock, failures=FAILURES, window=WINDOW):
        self.store = store
        self.clock = clock
        self.failures = failures
        self.window = window
        self.failures_total = 0  # as LoginLimiter's: on this node, since start
        self.lockouts_total = 0

    def _keys(self, token):
        _, name_key, address = token
        keys = self.store.keys
        return [*keys.lock("name", name_key), *keys.lock("address", address)]

    def begin(self, name_key, address, known=False):
        """
        Reserve an attempt on the name and the address: a ``Deferred`` of
        the token for ``end``, failing with ``ChatError`` as ``LoginLimiter``.
        """
        token = (uuid.uuid4().hex, name_key, address)
        now = self.clock.seconds()
        d = self.store.eval(scripts.BEGIN, self._keys(token), repr(now),
                            repr(now - self.window), self.failures, token[0],
                            int(bool(known)), int(self.window + 0.999))
        return d.addCallback(self._begun, token, name_key, known, now)

    def _begun(self, answer, token, name_key, known, now):
        answer = list(answer or [])
        if answer and answer[0] == "ok":
            return token
        what = dict(lock_checks(name_key, known)).get(
            "name" if answer[1:2] == ["1"] else "address", "from your address")
        if answer[0] == "locked":
            self.lockouts_total += 1
            raise locked_out(what, float(answer[2]) + self.window - now)
        raise in_progress(what)

    def end(self, token, failed):
        """
        The attempt is over: a failure counts on both subjects.  A
        ``Deferred`` that never fails (an attempt whose end is lost stops
        counting as in flight when its window passes).
        """
        if failed:
            self.failures_total += 1
        d = self.store.eval(scripts.END, self._keys(token), repr(self.clock.seconds()),
                            token[0], int(bool(failed)), int(self.window + 0.999),
                            self.failures)
        return d.addErrback(lambda f: self.log.warn(
            "a login's end was not counted in redis: {why}", why=f.getErrorMessage()))
