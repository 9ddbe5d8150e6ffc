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


def _advance(steps, value, error):
    """
    The next step of ``steps`` after ``value`` (or ``error`` thrown in);
    ``StopIteration`` carries the result.
    """
    if error is not None:
        return steps.throw(error)
    return steps.send(value)


def run_blocking(steps):
    """
    Every step of ``steps`` in this (worker) thread; the result.
    """
    value, error = None, None
    while True:
        try:
            _, f, args = _advance(steps, value, error)
        except StopIteration as done:
            return done.value
        try:
            value, error = f(*args), None
        except Exception as e:
            value, error = None, e


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
        return self._on_reactor(make(*args))

    def store_call(self, f, *args):
        """
        One store call (a worker thread for a blocking store).
        """
        if self.store.blocking:
            return self.run(f, *args)
        return defer.maybeDeferred(f, *args)

    @defer.inlineCallbacks
    def _on_reactor(self, steps):
        value, error = None, None
        while True:
            try:
                kind, f, args = _advance(steps, value, error)
            except StopIteration as done:
                return done.value
            try:
                if kind == HASHING:
                    value = yield self.run(f, *args)
                else:
                    value = yield defer.maybeDeferred(f, *args)
                error = None
            except Exception as e:
                value, error = None, e
