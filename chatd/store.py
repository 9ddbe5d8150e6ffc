"""
The shared-file store: the N most recent files under the data directory.

Layout of ``--data-dir``::

    files/<id>      committed files, under server-chosen ids
    tmp/<id>.part   uploads in progress (swept at start)
    partial/        cut-off uploads kept for resuming (see ``chatd.partials``)
    index.json      the kept files, newest first (written atomically)

With ``--redis`` the index is in Redis, and ``tmp/`` and ``partial/`` are
in each node's own ``nodes/N/`` (``chatd.cluster.nodedir``).

A file is listed only once its bytes are fsynced, renamed into ``files/`` and
named in the index, so a crash at any point never lists a partial file.

The index is a small interface, ``JsonIndex`` here (``chatd.cluster.files``
keeps it in Redis for nodes sharing one ``--data-dir``): ``entries`` (the
files as last seen, newest first), ``listing()`` (the files now: a list, or
a ``Deferred`` of one), ``check_open(name)`` (``ChatError`` when no upload
could be listed now), ``commit(upload, entry)`` (place the bytes and list
them: a ``Deferred`` of the entries no longer listed, their bytes gone) and
``sweeps`` (``files/`` holds only what it lists: unlisted files are swept
at start).
"""

import json
import os
import time
from dataclasses import asdict, dataclass

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from chatd import grammar
from chatd.grammar import ChatError
from chatd.limits import UploadSpace
from chatd.partials import Partials
from chatd.upload import Upload, describe

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


class JsonIndex:
    """
    The embedded index: ``index.json`` in the data directory, for one node.
    A commit's fsync, rename, index write and removals run in one
    ``blocking`` call, in the crash-safe order.
    """

    log = Logger()
    sweeps = True

    def __init__(self, store):
        self.root, self.files = store.root, store.files
        self.keep, self.blocking, self.clock = store.keep, store.blocking, store.clock
        loaded = self._load()  # newest first
        self.entries = loaded[:self.keep]  # --keep-files may have been lowered
        if len(loaded) > self.keep:
            self._write_index(self.entries)

    def listing(self):
        return self.entries

    def check_open(self, name):
        pass

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

    def _write_index(self, entries):
        data = json.dumps({"files": [asdict(e) for e in entries]}, indent=1)
        temp = self.root.child(INDEX + ".tmp")
        with open(temp.path, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp.path, self.root.child(INDEX).path)
        _fsync_dir(self.root.path)

    def commit(self, upload, entry):
        others = [e for e in self.entries if e.name != entry.name]
        entries = ([entry] + others)[:self.keep]
        dropped = [e for e in self.entries if e not in entries]

        def committed(_):
            self.entries = entries
            return dropped
        d = self.blocking(self._persist, upload, entry, entries, dropped)
        return d.addCallback(committed)

    def _persist(self, upload, entry, entries, dropped):
        """
        In a worker thread: the crash-safe order (bytes, rename, index),
        then the files no longer listed go.
        """
        target = place(upload, self.files.child(entry.id))
        try:
            self._write_index(entries)
        except OSError:
            target.remove()
            raise
        remove_files(self.files, dropped)


def place(upload, target):
    """
    In a worker thread: the finished upload's bytes, fsynced, renamed to
    ``target`` (a ``FilePath``); returns it.
    """
    upload.close(True)
    os.replace(upload.temp, target.path)
    return target


def remove_files(files, entries):
    """
    In a worker thread: delete the bytes of ``entries`` from ``files``.
    """
    for old in entries:
        try:
            files.child(old.id).remove()
        except OSError:
            pass


class FileStore:
    """
    Keeps the ``keep`` most recent files, each at most ``max_size`` bytes.

    ``blocking`` runs a function that may block (fsync) and returns a
    Deferred: ``deferToThread`` in the daemon, ``maybeDeferred`` in tests.
    ``index(store)`` makes the index (``JsonIndex``: embedded); ``node_dir``
    is where this node's own temp and partial files go (the data directory
    unless nodes share it).
    """

    log = Logger()

    def __init__(self, directory, keep=5, max_size=50 * 1024**2,
                 blocking=defer.maybeDeferred, clock=time.time, upload_space=None,
                 reactor=None, resume_window=600.0, partial_space=None,
                 index=JsonIndex, node_dir=None):
        self.root = FilePath(os.fspath(directory))
        own = self.root if node_dir is None else FilePath(os.fspath(node_dir))
        self.files = self.root.child("files")
        self.tmp = own.child("tmp")
        self.keep = keep
        self.max_size = max_size
        self.space = UploadSpace(4 * max_size if upload_space is None else upload_space,
                                 format_size=grammar.format_size)
        self.blocking = blocking
        self._commits = defer.DeferredLock()
        # Partial uploads are kept for resuming only with a reactor (timers).
        self.partials = None
        if reactor is not None:
            self.partials = Partials(
                own.child("partial"), resume_window,
                2 * max_size if partial_space is None else partial_space, reactor, clock)
        self.clock = clock
        for folder in (self.root, self.files, self.tmp):
            if not folder.isdir():
                folder.makedirs(ignoreExistingDirectory=True)
        self.index = index(self)
        self._sweep()

    @property
    def entries(self):
        """
        The files as last seen, newest first (``listing()``: as they are now).
        """
        return self.index.entries

    def listing(self):
        return self.index.listing()

    def _sweep(self):
        """
        Remove temp files left by a crash and files no index entry names.
        """
        for child in self.tmp.children():
            self.log.info("sweeping partial upload {path}", path=child.path)
            child.remove()
        if not self.index.sweeps:
            return
        kept = {e.id for e in self.entries}
        for child in self.files.children():
            if child.basename() not in kept:
                self.log.info("sweeping unlisted file {path}", path=child.path)
                child.remove()

    # --- the store --------------------------------------------------------

    def begin(self, name, size, uploader, sha256=None, source=None):
        """
        Start an upload, or refuse it (``ChatError``) before any byte is
        stored: over the size limit, or no upload space left (in all, or
        for ``source``, the uploader's address key).
        """
        return self._start(name, size, uploader, sha256, source)

    def resume(self, name, size, uploader, sha256, source=None):
        """
        Start an upload from the partial kept for ``(size, sha256)``, if
        any: its ``offset`` is where the sender goes on.  Refused like
        ``begin``, and while another connection resumes the same partial.
        """
        self._check_size(name, size)
        claimed = (None, 0) if self.partials is None else self.partials.claim(size, sha256)
        if claimed is None:
            raise ChatError(f"{name} is being resumed by another connection; "
                            f"try again later")
        path, held = claimed
        if path is None:
            return self._start(name, size, uploader, sha256, source)
        try:
            upload = self._start(name, size, uploader, sha256, source, (path, held))
        except ChatError:
            self.partials.keep(size, sha256, path, held)  # kept as it was
            raise
        upload.on_end.append(lambda: self.partials.unclaim(size, sha256))
        return upload

    def _check_size(self, name, size):
        if size > self.max_size:
            raise ChatError(
                f"file too large: {name} is {grammar.format_size(size)} "
                f"({size} bytes); the limit is {grammar.format_size(self.max_size)} "
                f"({self.max_size} bytes)")

    def _start(self, name, size, uploader, sha256, source, resume=None):
        self._check_size(name, size)
        self.index.check_open(name)
        incoming = size - (resume[1] if resume else 0)
        refusal = self.space.reserve(source, incoming)
        if refusal is not None:
            raise ChatError(refusal)
        try:
            upload = Upload(self, name, size, uploader, sha256, resume)
        except OSError as e:
            self.space.release(source, incoming)
            raise ChatError(f"could not store {name}: {describe(e)}")
        upload.on_end.append(lambda: self.space.release(source, incoming))
        return upload

    def commit(self, upload, digest):
        """
        Move a finished upload into place and make it the newest file: its
        bytes are fsynced, renamed into ``files/``, then listed by the
        index, all off the reactor thread, one commit at a time.  Fires
        with ``(StoredFile, removed)``.
        """
        return self._commits.run(self._commit, upload, digest)

    def _commit(self, upload, digest):
        entry = StoredFile(upload.id, upload.name, upload.size, digest,
                           upload.uploader, self.clock())

        def committed(dropped):
            if self.partials is not None:
                self.partials.drop(entry.size, entry.sha256)
            return entry, [e for e in dropped if e.name != entry.name]
        return self.index.commit(upload, entry).addCallback(committed)

    def find(self, name, entries=None):
        """
        The entry called ``name`` among ``entries`` (the files as last
        seen), or ``ChatError``.
        """
        for entry in self.entries if entries is None else entries:
            if entry.name == name:
                return entry
        raise ChatError(f"no such file: {name}")

    def lookup(self, name):
        """
        The entry called ``name`` in the index now (or a ``Deferred`` of it).
        """
        listed = self.listing()
        if isinstance(listed, defer.Deferred):
            return listed.addCallback(lambda entries: self.find(name, entries))
        return self.find(name, listed)

    def path(self, entry):
        return self.files.child(entry.id)
