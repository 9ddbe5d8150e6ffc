"""
The daemon's worker threads for hashing and the store, behind a bounded
two-lane queue: logins (and password checks) go ahead of registrations, and
past a lane's bound the answer is ``! server busy, try again in a moment``.
"""

import collections

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from chatd.grammar import ChatError

HASH_THREADS = 2  # hashes at once; more wait in the queue, chat never waits
LOGIN_QUEUE = 64  # logins and password changes waiting for a thread
REGISTER_QUEUE = 32  # registrations waiting for a thread (behind the logins)
BUSY = "server busy, try again in a moment"


class HashQueue:
    """
    Runs at most ``threads`` jobs at once through ``start(f, *args) ->
    Deferred``; the rest wait in two lanes, the first served first.  A lane
    holding its bound of waiting jobs refuses more with ``ChatError(BUSY)``.
    """

    def __init__(self, start, threads=HASH_THREADS, bounds=(LOGIN_QUEUE, REGISTER_QUEUE)):
        self.start = start
        self.threads = threads
        self.bounds = bounds
        self.running = 0
        self.lanes = tuple(collections.deque() for _ in bounds)

    def submit(self, lane, f, *args):
        waiting = self.lanes[lane]
        if len(waiting) >= self.bounds[lane]:
            return defer.fail(ChatError(BUSY))
        d = defer.Deferred()
        waiting.append((f, args, d))
        self._next()
        return d

    def _next(self):
        while self.running < self.threads:
            waiting = next((lane for lane in self.lanes if lane), None)
            if waiting is None:
                return
            f, args, d = waiting.popleft()
            self.running += 1
            job = defer.maybeDeferred(self.start, f, *args)
            job.addBoth(self._finished)
            job.chainDeferred(d)

    def _finished(self, result):
        self.running -= 1
        self._next()
        return result


class AccountsService(Service):
    """
    The thread pool that hashes and touches the store, started and stopped
    with the daemon; ``run`` (logins, password changes) and ``run_register``
    are the ``Accounts`` runners.
    """

    def __init__(self, reactor, store, threads=HASH_THREADS):
        self.reactor = reactor
        self.store = store
        self.pool = ThreadPool(0, threads, "chatd-accounts")
        self.queue = HashQueue(self._in_thread, threads)

    def _in_thread(self, f, *args):
        return deferToThreadPool(self.reactor, self.pool, f, *args)

    def run(self, f, *args):
        return self.queue.submit(0, f, *args)

    def run_register(self, f, *args):
        return self.queue.submit(1, f, *args)

    def startService(self):
        Service.startService(self)
        self.pool.start()

    def stopService(self):
        Service.stopService(self)
        self.pool.stop()
        self.store.close()
