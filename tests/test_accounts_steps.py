"""
Account work as steps (``chatd.accounts.steps``): a store answering with
Deferreds gets the same answers from ``Accounts`` as a blocking one, its
calls made on the reactor and only the hashing sent to the runner; a
blocking store's check stays one job.
"""

import pytest
from twisted.internet import defer, task

from chatd.accounts import Accounts, Hasher, MemoryAccountStore
from chatd.accounts.steps import Steps, hashing, run_blocking, storing
from chatd.grammar import ChatError

CHEAP = dict(memory_kib=8, time_cost=1)


class DeferredStore(MemoryAccountStore):
    """
    The memory store, answering its slow calls with Deferreds fired later
    (as a Redis store does), and counting them.
    """

    blocking = False

    def __init__(self):
        MemoryAccountStore.__init__(self)
        self.pending = []

    def _later(self, f, *args):
        d = defer.Deferred()
        self.pending.append((d, f, args))
        return d

    def answer_all(self):
        while self.pending:
            d, f, args = self.pending.pop(0)
            defer.maybeDeferred(f, *args).chainDeferred(d)

    def get(self, *args):
        return self._later(MemoryAccountStore.get, self, *args)

    def create(self, *args):
        return self._later(MemoryAccountStore.create, self, *args)

    def set_hash(self, *args):
        return self._later(MemoryAccountStore.set_hash, self, *args)

    def known(self, *args):
        return self._later(MemoryAccountStore.known, self, *args)

    def remember(self, *args):
        return self._later(MemoryAccountStore.remember, self, *args)

    def is_operator(self, *args):
        return self._later(MemoryAccountStore.is_operator, self, *args)


class Runner:
    """
    A runner recording what it was given to run (then running it at once).
    """

    def __init__(self):
        self.ran = []

    def __call__(self, f, *args):
        self.ran.append(f)
        return defer.maybeDeferred(f, *args)


def settled(store, d):
    results = []
    d.addBoth(results.append)
    if isinstance(store, DeferredStore):
        while not results:
            assert store.pending, "waiting for nothing"
            store.answer_all()
    assert results
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


@pytest.mark.parametrize("store_class", [MemoryAccountStore, DeferredStore])
def test_the_same_answers_from_either_kind_of_store(store_class):
    store, run = store_class(), Runner()
    accounts = Accounts(store, Hasher(**CHEAP), run, task.Clock())
    answers = []
    for call in [
        lambda: accounts.register("Alice", "secret1", "ip1"),
        lambda: accounts.register("alice", "secret2", "ip1"),
        lambda: accounts.login("alice", "wrong-one", "ip2"),
        lambda: accounts.login("zed", "secret1", "ip2"),
        lambda: accounts.login("ALICE", "secret1", "ip1"),
        lambda: accounts.change_password("alice", "secret1", "better22", "ip1"),
        lambda: accounts.login("alice", "secret1", "ip3"),
        lambda: accounts.login("alice", "wrong-two", "ip4"),
        lambda: accounts.login("alice", "better22", "ip3"),
        lambda: accounts.login("alice", "better22", "ip1"),  # known: not held
        lambda: accounts.store_call(store.is_operator, "alice"),
    ]:
        try:
            answers.append(settled(store, call()))
        except ChatError as e:
            answers.append("! " + e.message)
    assert answers == [
        "Alice", "! alice is already registered (/login alice PASSWORD if it is yours)",
        "! wrong password for alice",
        "! no account called zed (/register zed PASSWORD makes one)",
        "Alice", "Alice", "! wrong password for alice", "! wrong password for alice",
        "! too many failed logins for alice; try again in 60 s", "Alice", False]
    if store.blocking:  # a check or a change is one job on the threads
        assert set(run.ran) == {run_blocking, store.is_operator}
    else:  # only hashing goes to the threads
        assert {f.__name__ for f in run.ran} == {"hash", "verify", "waste"}


def test_a_step_that_raises_is_thrown_into_the_steps():
    def steps(store):
        try:
            yield storing(store.get, "nobody")
            yield storing(store.set_hash, "nobody", "x")  # KeyError
        except KeyError:
            return "caught"
        return "missed"

    for store in (MemoryAccountStore(), DeferredStore()):
        assert settled(store, Steps(store, Runner())(steps, store)) == "caught"


def test_a_hashing_failure_reaches_the_caller():
    def steps():
        yield hashing(lambda: 1 / 0)

    for store in (MemoryAccountStore(), DeferredStore()):
        with pytest.raises(ZeroDivisionError):
            settled(store, Steps(store, Runner())(steps))
