"""
One upload in progress, for the file store: chunks hashed and written by a
worker thread while the reactor reads the next ones; finished (verified and
committed by the store), aborted, or cut off and kept for resuming.
"""

import uuid

from twisted.internet import defer
from twisted.python.failure import Failure

from chatd.grammar import ChatError
from chatd.incoming import IncomingFile


def describe(error):
    """
    A one-line reason for a storage ``OSError``.
    """
    return error.strerror or str(error)


class Upload(IncomingFile):
    """
    One upload in progress.  Created by ``FileStore.begin``.

    Chunks are hashed and written by two worker threads (``store.blocking``),
    in order, a batch at a time, while the reactor reads the next ones: the
    read, the hash and the write overlap instead of adding up.  ``throttle``, if set,
    is a ``(pause, resume)`` pair called when more than ``BACKLOG_HIGH``
    bytes wait and again once they are back under ``BACKLOG_LOW``.  A
    storage error is remembered (the rest of the declared bytes are still
    consumed) and reported by ``finish``.

    A resumed upload (``resume=(path, held)``) appends to a kept partial
    file after its first ``held`` bytes (``offset``), which the worker
    hashes first, so the sha256 covers the whole file.
    """

    BACKLOG_HIGH = 8 * 2**20
    BACKLOG_LOW = 2 * 2**20

    def __init__(self, store, name, size, uploader, expected_sha256=None, resume=None):
        self.store = store
        self.on_end = []  # called once when it is stored, refused or kept
        self.name = name
        self.size = size
        self.uploader = uploader
        self.expected_sha256 = expected_sha256
        self.id = uuid.uuid4().hex
        self.throttle = None
        self.room = None  # where its announcement goes (set by the command)
        self._queued = []  # chunks not yet handed to the worker
        self._pending = 0  # bytes queued or being stored
        self._step = None  # the worker's Deferred, while it runs
        self._idle_waiters = []
        self._throttled = False
        if resume is None:
            self.offset = 0
            temp = store.tmp.child(self.id + ".part").path
            IncomingFile.__init__(self, temp, open(temp, "wb"))
        else:
            temp, self.offset = resume
            IncomingFile.__init__(self, temp, open(temp, "r+b"))
            self._step = store.blocking(self._rehash)
            self._step.addBoth(self._step_done, 0)

    def _rehash(self):
        """
        In the worker thread: hash the kept bytes, then append after them.
        """
        left = self.offset
        while left:
            chunk = self._file.read(min(left, 2**20))
            if not chunk:
                raise OSError(f"the kept part of {self.name} is shorter than {self.offset} bytes")
            self._hash.update(chunk)
            left -= len(chunk)
        self._file.truncate(self.offset)

    def _ended(self):
        callbacks, self.on_end = self.on_end, []
        for f in callbacks:
            f()

    def abort(self):
        IncomingFile.abort(self)
        self._ended()

    def cut_off(self):
        """
        The sender went away mid-upload: keep what arrived for resuming if
        it declared a sha256 and the store keeps partials, else abort.
        """
        partials = self.store.partials
        if partials is None or not self.expected_sha256 or self.error is not None:
            self.abort()
            return
        self.throttle = None

        def keep(_):
            if self.error is not None:
                self.abort()
                return
            partials.keep(self.size, self.expected_sha256, self.temp,
                          self.offset + self.received)
            self._ended()
        d = self._idle().addCallback(lambda _: self.store.blocking(self.close))
        d.addCallbacks(keep, lambda failure: self.abort())

    def write(self, data):
        self.received += len(data)
        if self.error is not None:
            return
        self._queued.append(data)
        self._pending += len(data)
        if self._step is None:
            self._next_step()
        if self.throttle and not self._throttled and self._pending > self.BACKLOG_HIGH:
            self._throttled = True
            self.throttle[0]()

    def _next_step(self):
        chunks, self._queued = self._queued, []
        # Hash and write the batch in two workers at once (both let go of
        # the GIL): the slower of the two bounds an upload, not their sum.
        step = defer.DeferredList(
            [self.store.blocking(self._hash_chunks, chunks),
             self.store.blocking(self._write_chunks, chunks)],
            consumeErrors=True)  # both finish before a failure closes the file
        self._step = step
        step.addBoth(self._step_done, sum(len(c) for c in chunks))

    def _hash_chunks(self, chunks):
        for chunk in chunks:
            self._hash.update(chunk)

    def _write_chunks(self, chunks):
        for chunk in chunks:
            self._file.write(chunk)

    def _step_done(self, result, size):
        self._step = None
        self._pending -= size
        if isinstance(result, list):  # the two workers': the first failure, if any
            result = next((outcome for ok, outcome in result if not ok), None)
        if isinstance(result, Failure) and self.error is None:
            self.error = result.value if result.check(OSError) else \
                OSError(f"internal error: {result.getErrorMessage()}")
            self.abort()
        if self.error is not None:
            self._queued, self._pending = [], 0
        elif self._queued:
            self._next_step()
        if self._throttled and self._pending < self.BACKLOG_LOW:
            self._throttled = False
            self.throttle[1]()
        if self._step is None:
            waiters, self._idle_waiters = self._idle_waiters, []
            for d in waiters:
                d.callback(None)

    def _idle(self):
        """
        A Deferred that fires once every queued chunk is stored.
        """
        if self._step is None:
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle_waiters.append(d)
        return d

    def finish(self):
        """
        Verify, fsync (off the reactor thread) and commit.  Fires with
        ``(StoredFile, [removed StoredFile])`` or fails with ``ChatError``.
        """
        d = self._idle().addCallback(lambda _: self._commit())

        def ended(result):
            self._ended()
            return result
        return d.addBoth(ended)

    def _commit(self):
        if self.error is not None:
            return defer.fail(ChatError(
                f"could not store {self.name}: {describe(self.error)}"))
        digest = self.hexdigest()
        if self.expected_sha256 and digest != self.expected_sha256:
            self.abort()
            return defer.fail(ChatError(
                f"sha256 mismatch for {self.name}: got {digest}, "
                f"expected {self.expected_sha256}; not stored"))

        def failed(failure):
            failure.trap(OSError)
            self.abort()
            raise ChatError(f"could not store {self.name}: {describe(failure.value)}")

        return self.store.commit(self, digest).addErrback(failed)


