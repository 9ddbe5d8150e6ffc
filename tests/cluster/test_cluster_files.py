"""
One file store for the cluster: real ``twistd`` nodes sharing one
``--data-dir`` (as nodes on one host do), the index in a real Redis.
"""

import hashlib
import json
import os
import subprocess
import sys
import threading

import pytest
from twisted.python import usage

from chatd import tap
from chatd.cluster import nodedir

from cluster_helpers import lines_until, settle, users
from daemon import free_port
from loopback import download, upload, upload_bytes
from redis_server import wait_for
from webclient import http_get

INDEX = "chatd:0:files"


def listed(client):
    """
    What ``/files`` lists for ``client``: ``(name, uploader, sha256)``, newest first.
    """
    client.say("/files")
    out = []
    for line in lines_until(client, "- online ("):
        if ": " in line and " bytes, shared by " in line:
            name, rest = line[2:].rsplit(": ", 1)
            out.append((name, rest.split("shared by ")[1].split(" ")[0],
                        rest.rsplit("sha256 ", 1)[1]))
    return out


def stored(data):
    return hashlib.sha256(data).hexdigest()


def files_on_disk(shared):
    return sorted(os.listdir(shared / "files"))


def two_nodes(redis, make_node, shared, *args):
    a = make_node(redis, *args, data_dir=shared)
    b = make_node(redis, *args, data_dir=shared)
    return a, b


def test_a_file_uploaded_on_one_node_downloads_from_another(redis, make_node, tmp_path):
    shared = tmp_path / "shared"
    a, b = two_nodes(redis, make_node, shared)
    alice, bob = users((a, "alice"), (b, "bob"))
    data = os.urandom(300_000)
    assert upload(alice, "notes.bin", data) == \
        f"*** stored notes.bin: {len(data)} bytes, sha256 {stored(data)}"
    assert bob.line() == "*** alice shared notes.bin (293 KiB)"
    assert listed(bob) == listed(alice) == [("notes.bin", "alice", stored(data))]
    header, got = download(bob, "notes.bin")
    assert got == data and header.sha256 == stored(data)
    # Each node keeps its own files (uploads in progress, kept partials) in
    # a directory of its own in the shared one; bans, accounts and history
    # are in Redis.
    assert sorted(os.listdir(shared / "nodes")) == ["0", "1"]
    for node in ("0", "1"):
        own = set(os.listdir(shared / "nodes" / node))
        assert {"tmp", "partial"} <= own and not {"bans.sqlite3", "accounts.sqlite3",
                                                  "history.sqlite3"} & own, own
    assert not {"accounts.sqlite3", "bans.sqlite3", "history.sqlite3", "index.json",
                "tmp"} & set(os.listdir(shared))
    # Names outside ASCII cross nodes as they are.
    assert upload(bob, "naïve café.txt", "café".encode()).startswith("*** stored naïve")
    assert alice.line() == "*** bob shared naïve café.txt (5 bytes)"
    assert download(alice, "naïve café.txt")[1] == "café".encode()


def test_keep_n_eviction_reaches_every_node(redis, make_node, tmp_path):
    shared = tmp_path / "shared"
    a, b = two_nodes(redis, make_node, shared, "--keep-files", "2")
    alice, bob = users((a, "alice"), (b, "bob"))
    first = b"first file"
    assert upload(alice, "one.txt", first).startswith("*** stored one.txt")
    assert bob.line() == "*** alice shared one.txt (10 bytes)"
    assert upload(bob, "two.txt", b"second").startswith("*** stored two.txt")
    assert alice.line() == "*** bob shared two.txt (6 bytes)"
    assert upload(alice, "three.txt", b"third").startswith("*** stored three.txt")
    removed = "*** one.txt was removed (only the 2 newest files are kept)"
    assert alice.line() == removed
    assert bob.line() == "*** alice shared three.txt (5 bytes)"
    assert bob.line() == removed
    assert [n for n, _, _ in listed(bob)] == ["three.txt", "two.txt"]
    assert len(files_on_disk(shared)) == 2  # the evicted bytes are gone
    bob.say("/download one.txt")
    assert bob.answer() == "! no such file: one.txt"
    # The same name again replaces it, on whichever node: no removal notice.
    assert upload(bob, "two.txt", b"second, again").startswith("*** stored two.txt")
    assert alice.line() == "*** bob shared two.txt (13 bytes)"
    assert [n for n, _, _ in listed(alice)] == ["two.txt", "three.txt"]
    assert download(alice, "two.txt")[1] == b"second, again"
    assert len(files_on_disk(shared)) == 2


def test_uploads_racing_from_both_nodes_never_overfill_the_index(redis, make_node,
                                                                 tmp_path):
    shared = tmp_path / "shared"
    keep = 3
    a, b = two_nodes(redis, make_node, shared, "--keep-files", str(keep), "--rate", "0")
    uploaders = []
    for i in range(12):  # each from an address of its own (2 uploads per address)
        c = (a, b)[i % 2].client(source=f"127.0.0.{10 + i}")
        c.nick(f"up{i}")
        uploaders.append(c)
    settle(uploaders)
    barrier = threading.Barrier(len(uploaders) + 1)
    answers, contents = {}, {}
    most = []
    racing = threading.Event()
    racing.set()

    def watch():  # the index's length, polled while the uploads race
        barrier.wait()
        while racing.is_set():
            most.append(int(redis.cli("LLEN", INDEX)))

    def race(i, c):
        # Half of them race for one name too.
        name = "same.bin" if i % 2 else f"file{i}.bin"
        data = os.urandom(20_000 + i)
        contents[(name, stored(data))] = data
        payload = upload_bytes(name, data)
        barrier.wait()
        c.send(payload)
        answers[c.name] = c.expect(lambda l: l.startswith(("*** stored ", "! ")), timeout=20)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=race, args=(i, c)) for i, c in enumerate(uploaders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    racing.clear()
    watcher.join()
    assert all(line.startswith("*** stored ") for line in answers.values()), answers
    assert max(most) <= keep and int(redis.cli("LLEN", INDEX)) == keep
    for reader in (uploaders[0], uploaders[1]):  # one on each node
        files = listed(reader)
        assert len(files) == keep and len({n for n, _, _ in files}) == keep
        for name, _, sha in files:
            header, got = download(reader, name)
            assert header.sha256 == sha and got == contents[(name, sha)]
    # Every evicted file's bytes are gone; every listed one's are there.
    assert len(files_on_disk(shared)) == keep


def test_an_upload_in_progress_survives_another_node_starting(redis, make_node, tmp_path):
    shared = tmp_path / "shared"
    a = make_node(redis, data_dir=shared)
    alice = a.client()
    data = os.urandom(100_000)
    payload = upload_bytes("slow.bin", data)
    alice.send(payload[:50_000])
    wait_for(lambda: any(os.scandir(shared / "nodes" / "0" / "tmp")), "the upload to start")
    b = make_node(redis, data_dir=shared)  # sweeps its own leftovers only
    bob = b.client()
    alice.send(payload[50_000:])
    assert alice.expect("*** stored ").startswith("*** stored slow.bin")
    bob.expect(lambda line: line.endswith(" shared slow.bin (97.7 KiB)"))  # (the bus
    # is asynchronous: B lists the file once it has heard of it)
    assert download(bob, "slow.bin")[1] == data


def test_no_upload_while_the_link_is_down(own_redis, make_node, tmp_path):
    a = make_node(own_redis, data_dir=tmp_path / "shared")
    alice = a.client()
    assert upload(alice, "before.txt", b"kept").startswith("*** stored")
    own_redis.stop()
    alice.expect("*** cluster link lost")
    # Refused before the bytes are stored (they are swallowed, never chat).
    assert upload(alice, "during.txt", b"not now") == \
        "! cannot store during.txt now: the cluster link is down; try again in a moment"
    # The list last read still serves downloads meanwhile.
    assert download(alice, "before.txt")[1] == b"kept"


def test_the_web_download_reads_the_shared_index(redis, make_node, tmp_path):
    shared = tmp_path / "shared"
    a = make_node(redis, data_dir=shared)
    b = make_node(redis, "--web-port", str(web_port := free_port()),
                  "--web-interface", "127.0.0.1", data_dir=shared)
    b.web_port = web_port
    data = os.urandom(50_000)
    assert upload(a.client(), "page.bin", data).startswith("*** stored page.bin")
    status, headers, body = http_get(b, "/files/page.bin")
    assert status == 200 and body == data and headers["etag"] == f'"{stored(data)}"'
    status, _, body = http_get(b, "/files/page.bin", {"Range": "bytes=10-19"})
    assert status == 206 and body == data[10:20]
    assert http_get(b, "/files/other.bin")[0] == 404


def test_a_node_sweeps_old_unlisted_files_only(redis, make_node, tmp_path):
    shared = tmp_path / "shared"
    files = shared / "files"
    files.mkdir(parents=True)
    data = b"listed long ago"
    listed_id, orphan, fresh = "a" * 32, "b" * 32, "c" * 32
    for name in (listed_id, orphan, fresh):
        (files / name).write_bytes(data)
    two_hours_ago = os.stat(files / orphan).st_mtime - 7200
    for name in (listed_id, orphan):
        os.utime(files / name, (two_hours_ago, two_hours_ago))
    redis.cli("RPUSH", INDEX, json.dumps({
        "id": listed_id, "name": "old.txt", "size": len(data), "sha256": stored(data),
        "uploader": "alice", "time": two_hours_ago}))
    a = make_node(redis, data_dir=shared)
    a.wait_log("swept unlisted file")
    # The orphan left by a node that died before listing it goes; a file
    # placed a moment ago (another node's commit under way) stays.
    assert files_on_disk(shared) == [listed_id, fresh]
    assert download(a.client(), "old.txt")[1] == data


def test_a_node_on_another_data_dir_says_so_and_refuses_uploads(redis, make_node, tmp_path):
    a = make_node(redis, data_dir=tmp_path / "shared")
    a.wait_log("is the cluster's shared one")
    b = make_node(redis, data_dir=tmp_path / "elsewhere")
    b.wait_log("is not the directory the other nodes of this cluster share")
    assert upload(b.client(), "lost.txt", b"x") == \
        "! cannot store lost.txt: this server's data directory is not the one the " \
        "other servers share; tell the operator"
    assert upload(a.client(), "kept.txt", b"x").startswith("*** stored kept.txt")
    c = make_node(redis, data_dir=tmp_path / "shared")
    c.wait_log("is the cluster's shared one")
    assert download(c.client(), "kept.txt")[1] == b"x"


def test_an_upload_whose_listing_fails_leaves_no_bytes(own_redis, make_node, tmp_path):
    shared = tmp_path / "shared"
    a = make_node(own_redis, data_dir=shared)
    alice = a.client()
    payload = upload_bytes("cut.bin", os.urandom(10_000))
    alice.send(payload[:5_000])  # accepted while the link was up
    wait_for(lambda: any(os.scandir(shared / "nodes" / "0" / "tmp")), "the upload to start")
    own_redis.stop()
    alice.expect("*** cluster link lost")
    alice.send(payload[5_000:])
    assert alice.answer() == \
        "! could not store cut.bin: the cluster link is down; try again in a moment"
    assert files_on_disk(shared) == [] and not any(os.scandir(shared / "nodes" / "0" / "tmp"))
    own_redis.start()
    alice.expect("*** cluster link restored", timeout=15)
    assert upload(alice, "cut.bin", b"again").startswith("*** stored cut.bin")
    assert download(alice, "cut.bin")[1] == b"again"


def test_a_listing_without_an_answer_keeps_its_bytes(own_redis, make_node, tmp_path):
    """
    Redis takes the commit script but answers too late (it may have listed
    the file): the uploader is told, and the bytes stay, so whatever the
    index says, nothing listed is without bytes.
    """
    shared = tmp_path / "shared"
    a = make_node(own_redis, data_dir=shared)
    alice = a.client()
    own_redis.cli("CLIENT", "PAUSE", "7000", "WRITE")  # past the 5 s reply timeout
    data = os.urandom(20_000)
    alice.send(upload_bytes("late.bin", data))
    assert alice.expect(lambda l: l.startswith(("*** stored ", "! ")), timeout=15) == \
        "! could not store late.bin: the cluster link failed while listing it; see /files"
    assert len(files_on_disk(shared)) == 1
    alice.expect("*** cluster link restored", timeout=20)
    for name, _, sha in listed(alice):
        assert download(alice, name)[1] == data and sha == stored(data)
    assert len(files_on_disk(shared)) == 1


def test_each_running_node_holds_a_directory_of_its_own(tmp_path):
    assert nodedir.claim(str(tmp_path)) == str(tmp_path / "nodes" / "0")
    assert nodedir.claim(str(tmp_path)) == str(tmp_path / "nodes" / "1")  # 0 is held
    # A node gone, its directory is free for the next one.
    code = "import sys; from chatd.cluster import nodedir; print(nodedir.claim(sys.argv[1]))"
    other = tmp_path / "other"
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code, str(other)], capture_output=True,
                              text=True, check=True, timeout=30)
        assert done.stdout.strip() == str(other / "nodes" / "0")


def test_a_data_dir_that_cannot_hold_node_directories_is_a_usage_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    options = tap.Options()
    options.parseOptions(["--redis", "redis://127.0.0.1:1/0",
                          "--data-dir", str(tmp_path / "a-file")])
    with pytest.raises(usage.UsageError) as e:
        tap.nodeDataDir(options)
    assert str(e.value).startswith("--data-dir: cannot make a node directory in ")


def test_an_upload_notice_is_kept_once_in_the_shared_history(redis, make_node, tmp_path):
    """
    The committing node writes the notice to the room's history; a node
    that heard it keeps it in its ring only, so it is replayed once, and
    the same, on every node.
    """
    a, b = two_nodes(redis, make_node, tmp_path / "shared")
    alice, bob = users((a, "alice"), (b, "bob"))
    assert upload(alice, "kept.txt", b"kept").startswith("*** stored kept.txt")
    notice = "*** alice shared kept.txt (4 bytes)"
    assert bob.line() == notice
    for node in (a, b):
        carol = node.client()
        replayed = carol.lines_until("- end of history of #lobby")
        assert [line.split("] ", 1)[1] for line in replayed
                if line.startswith("= [")].count(notice) == 1, replayed
        carol.say("/history 50")
        shown = carol.lines_until("- end of history of #lobby")
        assert [line.split("] ", 1)[1] for line in shown
                if line.startswith("= [")].count(notice) == 1, shown
