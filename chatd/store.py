"""
The shared-file store: the N most recent files under the data directory.

Layout of ``--data-dir``::

    files/<id>      committed files, under server-chosen ids
    tmp/<id>.part   uploads in progress (swept at start)
    index.json      the kept files, newest first (written atomically)

A file is listed only once its bytes are fsynced, renamed into ``files/`` and
named in the index, so a crash at any point never lists a partial file.
"""

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from chatd import grammar
from chatd.grammar import ChatError
from chatd.incoming import IncomingFile
from chatd.limits import UploadSpace

INDEX = "index.json"


@dataclass(frozen=True)
class StoredFile:
    """
    One kept file, as listed.
    """

    id: str
    name: str
    size: int
    sha256: str
    uploader: str
    time: float


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _describe(error):
    """
    A one-line reason for a storage ``OSError``.
    """
    return error.strerror or str(error)


class Upload(IncomingFile):
    """
    One upload in progress.  Created by ``FileStore.begin``.

    Chunks are hashed and written by a worker thread (``store.blocking``),
    in order, a batch at a time, while the reactor reads the next ones: the
    copy and the hash overlap instead of adding up.  ``throttle``, if set,
    is a ``(pause, resume)`` pair called when more than ``BACKLOG_HIGH``
    bytes wait and again once they are back under ``BACKLOG_LOW``.  A
    storage error is remembered (the rest of the declared bytes are still
    consumed) and reported by ``finish``.
    """

    BACKLOG_HIGH = 8 * 2**20
    BACKLOG_LOW = 2 * 2**20

    def __init__(self, store, name, size, uploader, expected_sha256=None):
        self.store = store
        self.release = None  # gives back its upload space, once
        self.name = name
        self.size = size
        self.uploader = uploader
        self.expected_sha256 = expected_sha256
        self.id = uuid.uuid4().hex
        self.throttle = None
        self._queued = []  # chunks not yet handed to the worker
        self._pending = 0  # bytes queued or being stored
        self._step = None  # the worker's Deferred, while it runs
        self._idle_waiters = []
        self._throttled = False
        temp = store.tmp.child(self.id + ".part").path
        IncomingFile.__init__(self, temp, open(temp, "wb"))

    def _ended(self):
        release, self.release = self.release, None
        if release is not None:
            release()

    def abort(self):
        IncomingFile.abort(self)
        self._ended()

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
        self._step = self.store.blocking(self._store_chunks, chunks)
        self._step.addBoth(self._step_done, sum(len(c) for c in chunks))

    def _store_chunks(self, chunks):
        """
        In the worker thread: hash and write (both let go of the GIL).
        """
        for chunk in chunks:
            self._hash.update(chunk)
            self._file.write(chunk)

    def _step_done(self, result, size):
        self._step = None
        self._pending -= size
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
                f"could not store {self.name}: {_describe(self.error)}"))
        digest = self.hexdigest()
        if self.expected_sha256 and digest != self.expected_sha256:
            self.abort()
            return defer.fail(ChatError(
                f"sha256 mismatch for {self.name}: got {digest}, "
                f"expected {self.expected_sha256}; not stored"))

        def failed(failure):
            failure.trap(OSError)
            self.abort()
            raise ChatError(f"could not store {self.name}: {_describe(failure.value)}")

        return self.store.commit(self, digest).addErrback(failed)


class FileStore:
    """
    Keeps the ``keep`` most recent files, each at most ``max_size`` bytes.

    ``blocking`` runs a function that may block (fsync) and returns a
    Deferred: ``deferToThread`` in the daemon, ``maybeDeferred`` in tests.
    """

    log = Logger()

    def __init__(self, directory, keep=5, max_size=50 * 1024**2,
                 blocking=defer.maybeDeferred, clock=time.time, upload_space=None):
        self.root = FilePath(os.fspath(directory))
        self.files = self.root.child("files")
        self.tmp = self.root.child("tmp")
        self.keep = keep
        self.max_size = max_size
        self.space = UploadSpace(4 * max_size if upload_space is None else upload_space,
                                 format_size=grammar.format_size)
        self.blocking = blocking
        self._commits = defer.DeferredLock()
        self.clock = clock
        for folder in (self.root, self.files, self.tmp):
            if not folder.isdir():
                folder.makedirs(ignoreExistingDirectory=True)
        loaded = self._load()  # newest first
        self.entries = loaded[:keep]  # --keep-files may have been lowered
        self._sweep()
        if len(loaded) > keep:
            self._write_index(self.entries)

    # --- persistence ----------------------------------------------------

    def _load(self):
        index = self.root.child(INDEX)
        if not index.exists():
            return []
        try:
            raw = json.loads(index.getContent())
            entries = [StoredFile(**item) for item in raw["files"]]
        except (ValueError, KeyError, TypeError) as e:
            # Never delete what we cannot account for: set the index and the
            # files aside for the operator, and start empty.
            aside = self.root.child(f"unreadable-{int(self.clock())}")
            aside.makedirs(ignoreExistingDirectory=True)
            index.moveTo(aside.child(INDEX))
            self.files.moveTo(aside.child("files"))
            self.files.makedirs()
            self.log.error("index {path} is unreadable ({error}); it and the files "
                           "were moved to {aside}; starting empty",
                           path=index.path, error=e, aside=aside.path)
            return []
        return [e for e in entries if self.files.child(e.id).isfile()]

    def _sweep(self):
        """
        Remove temp files left by a crash and files no index entry names.
        """
        kept = {e.id for e in self.entries}
        for child in self.tmp.children():
            self.log.info("sweeping partial upload {path}", path=child.path)
            child.remove()
        for child in self.files.children():
            if child.basename() not in kept:
                self.log.info("sweeping unlisted file {path}", path=child.path)
                child.remove()

    def _write_index(self, entries):
        data = json.dumps({"files": [asdict(e) for e in entries]}, indent=1)
        temp = self.root.child(INDEX + ".tmp")
        with open(temp.path, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp.path, self.root.child(INDEX).path)
        _fsync_dir(self.root.path)

    # --- the store --------------------------------------------------------

    def begin(self, name, size, uploader, sha256=None, source=None):
        """
        Start an upload, or refuse it (``ChatError``) before any byte is
        stored: over the size limit, or no upload space left (in all, or
        for ``source``, the uploader's address key).
        """
        if size > self.max_size:
            raise ChatError(
                f"file too large: {name} is {grammar.format_size(size)} "
                f"({size} bytes); the limit is {grammar.format_size(self.max_size)} "
                f"({self.max_size} bytes)")
        refusal = self.space.reserve(source, size)
        if refusal is not None:
            raise ChatError(refusal)
        try:
            upload = Upload(self, name, size, uploader, sha256)
        except OSError as e:
            self.space.release(source, size)
            raise ChatError(f"could not store {name}: {_describe(e)}")
        upload.release = lambda: self.space.release(source, size)
        return upload

    def commit(self, upload, digest):
        """
        Move a finished upload into place and make it the newest file: its
        bytes are fsynced, renamed into ``files/``, then the index written,
        all through ``blocking`` (never on the reactor thread), one commit
        at a time.  Fires with ``(StoredFile, removed)``.
        """
        return self._commits.run(self._commit, upload, digest)

    def _commit(self, upload, digest):
        entry = StoredFile(upload.id, upload.name, upload.size, digest,
                           upload.uploader, self.clock())
        others = [e for e in self.entries if e.name != entry.name]
        entries = ([entry] + others)[:self.keep]
        dropped = [e for e in self.entries if e not in entries]
        removed = [e for e in others if e not in entries]

        def committed(_):
            self.entries = entries
            return entry, removed
        d = self.blocking(self._persist, upload, entry, entries, dropped)
        return d.addCallback(committed)

    def _persist(self, upload, entry, entries, dropped):
        """
        In a worker thread: the crash-safe order (bytes, rename, index),
        then the files no longer listed go.
        """
        upload.close(True)
        target = self.files.child(entry.id)
        os.replace(upload.temp, target.path)
        try:
            self._write_index(entries)
        except OSError:
            target.remove()
            raise
        for old in dropped:
            try:
                self.files.child(old.id).remove()
            except OSError:
                pass

    def find(self, name):
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise ChatError(f"no such file: {name}")

    def path(self, entry):
        return self.files.child(entry.id)
