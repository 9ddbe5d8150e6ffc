"""
The file store: retention, replacement, checksums, restart, sweeping,
containment in the data directory, and storage errors.
"""

import errno
import hashlib
import json
import os

import pytest
from twisted.internet import defer

from chatd.grammar import ChatError
from chatd.store import FileStore


def sha(data):
    return hashlib.sha256(data).hexdigest()


def result_of(d):
    """
    The result of an already-fired Deferred (``Failure`` if it failed).
    """
    out = []
    d.addBoth(out.append)
    assert out, "Deferred has not fired"
    return out[0]


def put(store, name, data, uploader="alice", sha256=None, chunk=7):
    upload = store.begin(name, len(data), uploader, sha256)
    for i in range(0, len(data), chunk):
        upload.write(data[i:i + chunk])
    result = result_of(upload.finish())
    if isinstance(result, Exception) or hasattr(result, "raiseException"):
        result.raiseException()
    return result


def held_blocking():
    """
    ``(pending, blocking)``: each call of ``blocking`` waits in ``pending``
    as ``(Deferred, f, args)`` until the test runs it.
    """
    pending = []

    def blocking(f, *args):
        d = defer.Deferred()
        pending.append((d, f, args))
        return d
    return pending, blocking


def tree(path):
    """
    Every file below ``path``, relative.
    """
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def names(store):
    return [e.name for e in store.entries]


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def ticks():
    now = [1000.0]

    def clock():
        now[0] += 1
        return now[0]
    return clock


@pytest.fixture
def store(data_dir, ticks):
    return FileStore(data_dir, keep=5, max_size=1024, clock=ticks)


def test_new_store_is_empty_with_its_layout(store, data_dir):
    assert store.entries == []
    assert (data_dir / "files").is_dir() and (data_dir / "tmp").is_dir()
    assert tree(data_dir) == []


def test_stored_file_is_listed_with_its_metadata(store, data_dir):
    data = b"line one\nline two\r\n\x00\xff"
    entry, removed = put(store, "notes.txt", data, uploader="bob")
    assert removed == []
    assert store.entries == [entry]
    assert (entry.name, entry.size, entry.sha256, entry.uploader, entry.time) == \
        ("notes.txt", len(data), sha(data), "bob", 1001.0)
    assert store.find("notes.txt") == entry
    assert open(store.path(entry).path, "rb").read() == data
    assert tree(data_dir) == ["files/" + entry.id, "index.json"]


def test_empty_file(store):
    entry, _ = put(store, "empty", b"")
    assert (entry.size, entry.sha256) == (0, sha(b""))
    assert open(store.path(entry).path, "rb").read() == b""


def test_keeps_the_five_newest(store, data_dir):
    removed_all = []
    for i in range(1, 8):
        entry, removed = put(store, f"f{i}", f"data {i}".encode())
        removed_all.append([r.name for r in removed])
    assert removed_all == [[], [], [], [], [], ["f1"], ["f2"]]
    assert names(store) == ["f7", "f6", "f5", "f4", "f3"]
    assert sorted(tree(data_dir / "files")) == sorted(e.id for e in store.entries)
    for gone in ("f1", "f2"):
        with pytest.raises(ChatError, match=f"no such file: {gone}"):
            store.find(gone)


@pytest.mark.parametrize("keep", [1, 3])
def test_keep_is_configurable(data_dir, keep):
    store = FileStore(data_dir, keep=keep)
    for i in range(5):
        put(store, f"f{i}", b"x")
    assert names(store) == [f"f{i}" for i in range(4, 4 - keep, -1)]
    assert len(tree(data_dir / "files")) == keep


def test_reupload_replaces_and_becomes_newest(store, data_dir):
    for name in ("a", "b", "c"):
        put(store, name, name.encode())
    old_a = store.find("a")
    entry, removed = put(store, "a", b"new a")
    assert removed == []
    assert names(store) == ["a", "c", "b"]
    assert store.find("a") == entry and entry.sha256 == sha(b"new a")
    assert open(store.path(entry).path, "rb").read() == b"new a"
    assert not os.path.exists(store.path(old_a).path)
    assert len(tree(data_dir / "files")) == 3


def test_reupload_of_oldest_pushes_nothing_out(store):
    for i in range(5):
        put(store, f"f{i}", b"x")
    _, removed = put(store, "f0", b"y")
    assert removed == []
    assert names(store) == ["f0", "f4", "f3", "f2", "f1"]


def test_names_are_case_sensitive(store):
    put(store, "A.txt", b"1")
    put(store, "a.txt", b"2")
    assert names(store) == ["a.txt", "A.txt"]


def test_sha256_verified(store):
    entry, _ = put(store, "ok", b"hello", sha256=sha(b"hello"))
    assert entry.sha256 == sha(b"hello")


def test_sha256_mismatch_refused_and_nothing_listed(store, data_dir):
    wrong = sha(b"something else")
    with pytest.raises(ChatError) as e:
        put(store, "bad", b"hello", sha256=wrong)
    assert e.value.message == (f"sha256 mismatch for bad: got {sha(b'hello')}, "
                               f"expected {wrong}; not stored")
    assert store.entries == []
    assert tree(data_dir) == []


def test_too_large_refused_before_anything_is_stored(store, data_dir):
    with pytest.raises(ChatError) as e:
        store.begin("big.bin", 1025, "alice")
    assert e.value.message == ("file too large: big.bin is 1 KiB (1025 bytes); "
                               "the limit is 1 KiB (1024 bytes)")
    assert tree(data_dir) == []
    entry, _ = put(store, "exact.bin", b"x" * 1024)
    assert entry.size == 1024


def test_abort_leaves_nothing(store, data_dir):
    upload = store.begin("cut", 100, "alice")
    upload.write(b"x" * 50)
    assert len(tree(data_dir / "tmp")) == 1
    upload.abort()
    assert store.entries == []
    assert tree(data_dir) == []


def test_bytes_stream_to_a_temp_file_as_they_arrive(store, data_dir):
    upload = store.begin("stream", 20, "alice")
    upload.write(b"0123456789")
    upload._file.flush()
    [temp] = (data_dir / "tmp").iterdir()
    assert temp.name.endswith(".part") and temp.read_bytes() == b"0123456789"
    assert store.entries == []
    upload.write(b"abcdefghij")
    result_of(upload.finish())
    assert names(store) == ["stream"]
    assert tree(data_dir / "tmp") == []


def test_finish_waits_for_the_blocking_flush(data_dir):
    """
    The fsync runs through ``blocking`` (a thread in the daemon); nothing
    is listed until it is done.
    """
    pending, blocking = held_blocking()

    store = FileStore(data_dir, blocking=blocking)
    upload = store.begin("slow", 3, "alice")
    upload.write(b"abc")
    done = upload.finish()
    fired = []
    done.addBoth(lambda result: fired.append(result) or result)
    ran = []
    while pending:  # the worker's write, then the fsync, rename and index
        assert store.entries == [] and fired == []
        d, f, args = pending.pop(0)
        ran.append(f)
        d.callback(f(*args))
    assert ran == [upload._hash_chunks, upload._write_chunks, store.index._persist]
    entry, removed = result_of(done)
    assert names(store) == ["slow"] and removed == []


def test_commit_syncs_off_the_reactor_thread_in_order(data_dir, monkeypatch):
    """
    Every fsync of a commit (the bytes, the index, the directory) runs
    inside ``blocking`` (a thread in the daemon), in the crash-safe order:
    bytes, rename into files/, index, directory.
    """
    inside = [False]
    events = []

    def blocking(f, *args):
        inside[0] = True
        try:
            return defer.maybeDeferred(f, *args)
        finally:
            inside[0] = False

    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        events.append(("fsync", os.path.relpath(path, data_dir), inside[0]))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", os.path.relpath(dst, data_dir), inside[0]))
        return real_replace(src, dst)

    store = FileStore(data_dir, blocking=blocking)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    entry, _ = put(store, "a", b"abc")
    monkeypatch.undo()
    part = f"tmp/{entry.id}.part"
    assert [e[:2] for e in events] == [
        ("fsync", part), ("rename", f"files/{entry.id}"), ("fsync", "index.json.tmp"),
        ("rename", "index.json"), ("fsync", ".")]
    assert all(on_worker for _, _, on_worker in events), events


def test_commits_in_flight_at_once_are_both_listed(data_dir):
    pending, blocking = held_blocking()

    store = FileStore(data_dir, blocking=blocking)
    uploads = [store.begin(name, 1, "alice") for name in ("one", "two")]
    done = []
    for upload in uploads:
        upload.write(b"x")
        done.append(upload.finish())
    while pending:
        d, f, args = pending.pop(0)
        d.callback(f(*args))
    assert [result_of(d)[0].name for d in done] == ["one", "two"]
    assert names(store) == ["two", "one"]
    assert names(FileStore(data_dir)) == ["two", "one"]


def test_chunks_are_stored_in_order_by_the_workers_and_throttled(data_dir):
    """
    Chunks wait while the workers hash and write a batch, go in the next
    batch in order, and a backlog over the high mark pauses input until it
    drains.
    """
    pending, blocking = held_blocking()

    store = FileStore(data_dir, blocking=blocking, max_size=2**30)
    upload = store.begin("big", 3 * 2**20 + 3, "alice")
    calls = []
    upload.throttle = (lambda: calls.append("pause"), lambda: calls.append("resume"))
    upload.BACKLOG_HIGH, upload.BACKLOG_LOW = 2**20, 2**19
    upload.write(b"a")
    upload.write(b"b" * 2**20)
    upload.write(b"c" * 2**20)

    def run_step():
        """
        One batch: its hash and its write, each in a worker, both pending.
        """
        (d1, hashing, args1), (d2, writing, args2) = pending[:2]
        del pending[:2]
        assert (hashing, writing) == (upload._hash_chunks, upload._write_chunks)
        assert args1 == args2
        d1.callback(hashing(*args1))
        d2.callback(writing(*args2))
        return args1

    assert calls == ["pause"] and len(pending) == 2  # one batch at a time
    assert run_step() == ([b"a"],)
    assert len(pending) == 2 and pending[0][2] == ([b"b" * 2**20, b"c" * 2**20],)
    upload.write(b"d" * 2**20 + b"ef")
    run_step()
    assert calls == ["pause"]  # 1 MiB + 2 bytes still waiting: over the low mark
    run_step()
    assert calls == ["pause", "resume"]
    done = upload.finish()
    d, f, args = pending.pop(0)
    d.callback(f(*args))
    entry, _ = result_of(done)
    data = b"a" + b"b" * 2**20 + b"c" * 2**20 + b"d" * 2**20 + b"ef"
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert open(store.path(entry).path, "rb").read() == data


def test_restart_keeps_files_and_order(data_dir, ticks):
    store = FileStore(data_dir, keep=5, clock=ticks)
    for i in range(6):
        put(store, f"f{i}", f"data {i}".encode(), uploader=f"u{i}")
    before = store.entries
    again = FileStore(data_dir, keep=5)
    assert again.entries == before
    assert names(again) == ["f5", "f4", "f3", "f2", "f1"]
    for entry in again.entries:
        assert open(again.path(entry).path, "rb").read() == f"data {entry.name[1:]}".encode()
    put(again, "f6", b"six")
    assert names(FileStore(data_dir)) == ["f6", "f5", "f4", "f3", "f2"]


def test_restart_with_fewer_kept_files_drops_the_oldest(data_dir):
    store = FileStore(data_dir, keep=5)
    for i in range(5):
        put(store, f"f{i}", b"x")
    fewer = FileStore(data_dir, keep=3)
    assert names(fewer) == ["f4", "f3", "f2"]
    assert len(tree(data_dir / "files")) == 3
    assert names(FileStore(data_dir, keep=5)) == ["f4", "f3", "f2"]


def test_index_is_written_atomically(store, data_dir):
    put(store, "a", b"a")
    index = json.loads((data_dir / "index.json").read_text())
    assert [f["name"] for f in index["files"]] == ["a"]
    assert not (data_dir / "index.json.tmp").exists()


def test_sweep_at_start(data_dir):
    store = FileStore(data_dir)
    entry, _ = put(store, "kept", b"kept")
    (data_dir / "tmp" / "crashed.part").write_bytes(b"half an upload")
    (data_dir / "tmp" / "other").write_bytes(b"x")
    (data_dir / "files" / "deadbeef").write_bytes(b"unlisted")
    again = FileStore(data_dir)
    assert names(again) == ["kept"]
    assert tree(data_dir) == ["files/" + entry.id, "index.json"]


def test_entry_whose_file_vanished_is_dropped(data_dir):
    store = FileStore(data_dir)
    a, _ = put(store, "a", b"a")
    b, _ = put(store, "b", b"b")
    os.remove(store.path(a).path)
    assert names(FileStore(data_dir)) == ["b"]


def test_unreadable_index_starts_empty_and_sweeps(data_dir):
    store = FileStore(data_dir)
    put(store, "a", b"a")
    (data_dir / "index.json").write_text("{not json")
    again = FileStore(data_dir)
    assert again.entries == []
    assert tree(data_dir / "files") == []
    put(again, "b", b"b")
    assert names(FileStore(data_dir)) == ["b"]


@pytest.mark.parametrize("name", [
    "../../escape", "/etc/passwd", "..", ".", "a/../../b", "..\\..\\x", "",
    "index.json", "../data/index.json", "tmp", "files",
])
def test_nothing_is_written_outside_the_data_dir(tmp_path, data_dir, name):
    """
    Even a name that ``check_filename`` would refuse cannot place a file:
    files are stored under server-chosen ids.
    """
    store = FileStore(data_dir)
    entry, _ = put(store, name, b"payload")
    assert entry.name == name
    path = os.path.realpath(store.path(entry).path)
    assert path.startswith(os.path.realpath(data_dir / "files") + os.sep)
    assert len(entry.id) == 32 and int(entry.id, 16) >= 0
    assert tree(tmp_path) == ["data/files/" + entry.id, "data/index.json"]
    assert names(FileStore(data_dir)) == [name]


class FullDisk:
    """
    A file whose writes fail as on a full disk after ``room`` bytes.
    """

    def __init__(self, real, room=0):
        self.real = real
        self.room = room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.real.write(data)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_disk_full_during_write(store, data_dir):
    upload = store.begin("big", 30, "alice")
    upload._file = FullDisk(upload._file, room=10)
    upload.write(b"x" * 10)
    upload.write(b"y" * 10)  # fails: the temp file goes at once
    assert tree(data_dir / "tmp") == []
    upload.write(b"z" * 10)  # the rest is still consumed
    assert upload.received == 30
    failure = result_of(upload.finish())
    assert failure.check(ChatError)
    assert failure.value.message == "could not store big: No space left on device"
    assert store.entries == []
    assert tree(data_dir) == []


def test_disk_full_at_fsync(store, data_dir):
    def blocking(f, *args):
        return defer.fail(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))

    store.blocking = blocking
    upload = store.begin("a", 1, "alice")
    upload.write(b"a")
    failure = result_of(upload.finish())
    assert failure.value.message == "could not store a: No space left on device"
    assert store.entries == [] and tree(data_dir) == []


def test_index_write_failure_lists_nothing(store, data_dir, monkeypatch):
    put(store, "old", b"old")
    before = store.entries

    def broken(entries):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(store.index, "_write_index", broken)
    upload = store.begin("new", 3, "alice")
    upload.write(b"new")
    failure = result_of(upload.finish())
    assert failure.check(ChatError)
    assert failure.value.message.startswith("could not store new: ")
    assert store.entries == before
    assert tree(data_dir) == ["files/" + before[0].id, "index.json"]
    monkeypatch.undo()
    assert FileStore(data_dir).entries == before


def test_cannot_create_temp_file(store, data_dir):
    os.rmdir(data_dir / "tmp")
    with pytest.raises(ChatError) as e:
        store.begin("a", 1, "alice")
    assert e.value.message == "could not store a: No such file or directory"
    assert store.entries == []
def test_unreadable_index_keeps_files_aside(tmp_path):
    s = FileStore(tmp_path)
    up = s.begin("a.txt", 5, "alice"); up.write(b"hello")
    up.finish()
    (tmp_path / "index.json").write_text("{not json")
    s2 = FileStore(tmp_path)
    assert s2.entries == []
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("unreadable-")]
    assert len(aside) == 1
    assert (aside[0] / "index.json").read_text() == "{not json"
    assert [f.read_bytes() for f in (aside[0] / "files").iterdir()] == [b"hello"]
    assert list((tmp_path / "files").iterdir()) == []
