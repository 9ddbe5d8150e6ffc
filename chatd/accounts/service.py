"""
The daemon's worker threads for hashing and the store.
"""

from twisted.application.service import Service
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

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
