"""
Account work as steps: a generator function yields ``hashing(f, *args)``
and ``storing(f, *args)`` steps and gets each result back (or its exception
thrown in).  ``Steps`` runs it to fit the store:

- a *blocking* store (SQLite, memory): the whole generator is one job on
  the hashing threads, each step called in turn there (as before any
  other store existed);
- an asynchronous store (Redis, whose calls answer with Deferreds
  on the reactor): the store steps run on the reactor, the hashing steps
  each as a job on the hashing threads.
"""

from twisted.internet import defer

HASHING, STORING = "hashing", "storing"


def hashing(f, *args):
    return HASHING, f, args


def storing(f, *args):
    return STORING, f, args


def _drive(steps, call):
    """
    A generator running ``steps``: it yields ``call(kind, f, args)`` for
    each step and takes the outcome back (a value, or an exception thrown
    in), so ``run_blocking`` or ``inlineCallbacks`` can drive it.
    """
    value, error = None, None
    while True:
        try:
            kind, f, args = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as done:
            return done.value
        try:
            value, error = (yield call(kind, f, args)), None
        except Exception as e:
            value, error = None, e


def _now(kind, f, args):
    return f(*args)


def run_blocking(steps):
    """
    Every step of ``steps`` in this (worker) thread; the result.
    """
    driver = _drive(steps, _now)
    value = None
    try:
        while True:
            value = driver.send(value)
    except StopIteration as done:
        return done.value


class Steps:
    """
    Runs step generators for ``store`` with ``run(f, *args) -> Deferred``
    (the hashing threads' runner).
    """

    def __init__(self, store, run):
        self.store = store
        self.run = run

    def __call__(self, make, *args):
        """
        ``make(*args)``'s steps: a ``Deferred`` of its result.
        """
        if self.store.blocking:
            return self.run(run_blocking, make(*args))
        return defer.inlineCallbacks(_drive)(make(*args), self._on_reactor)

    def store_call(self, f, *args):
        """
        One store call (a worker thread for a blocking store).
        """
        if self.store.blocking:
            return self.run(f, *args)
        return defer.maybeDeferred(f, *args)

    def _on_reactor(self, kind, f, args):
        if kind == HASHING:
            return self.run(f, *args)
        return defer.maybeDeferred(f, *args)
