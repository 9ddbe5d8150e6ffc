"""
Hostile cases of the cluster's file store: junk in the Redis index (never
listed, never made a path, dropped by the next commit), an index key of the
wrong type, and junk file announcements on the bus.
"""

import hashlib
import json
import os

import pytest

from chatd.cluster.files import parse_entry
from chatd.store import StoredFile
from cluster_helpers import lines_until, users
from loopback import download, upload
from redis_server import make_node, redis, session_redis  # noqa: F401

INDEX = "chatd:0:files"
LOBBY = "chatd:0:room:lobby"
FORGED_NODE = "deadbeefdeadbeef"
GOOD_ID = "0123456789abcdef0123456789abcdef"
DATA = b"listed bytes"
GOOD = {"id": GOOD_ID, "name": "good.txt", "size": len(DATA),
        "sha256": hashlib.sha256(DATA).hexdigest(), "uploader": "alice", "time": 1.5}


def entry(**changes):
    return json.dumps({**GOOD, **changes})


JUNK = [
    "not json",
    "[1, 2]",
    "42",
    json.dumps({k: v for k, v in GOOD.items() if k != "sha256"}),
    entry(extra=1),
    entry(id="../sentinel"),
    entry(id="../../etc/passwd"),
    entry(id=GOOD_ID.upper()),
    entry(id=7),
    entry(name="../escape.txt"),
    entry(name="a/b"),
    entry(name=".."),
    entry(name="bell\x07.txt"),
    entry(name=""),
    entry(size=-1),
    entry(size=1.5),
    entry(size=True),
    entry(size="12"),
    entry(sha256="zz" * 32),
    entry(sha256="ab"),
    entry(uploader="eve> <x"),
    entry(uploader="admin"),
    entry(time="yesterday"),
    entry(time=None),
    '{"id": "' + GOOD_ID + '", "time": NaN}',
    entry(name="x" * 5000),
]


@pytest.mark.parametrize("raw", JUNK)
def test_junk_index_entries_do_not_parse(raw):
    assert parse_entry(raw) is None


def test_a_good_entry_parses():
    assert parse_entry(entry()) == StoredFile(GOOD_ID, "good.txt", len(DATA),
                                              GOOD["sha256"], "alice", 1.5)
    assert parse_entry(None) is None and parse_entry(b"{}") is None


def listed_names(client):
    client.say("/files")
    return [line[2:].rsplit(": ", 1)[0] for line in lines_until(client, "- online (")
            if " bytes, shared by " in line]


def test_junk_in_the_redis_index_is_skipped_then_dropped(redis, make_node, tmp_path):
    shared = tmp_path / "shared"
    (shared / "files").mkdir(parents=True)
    (shared / "files" / GOOD_ID).write_bytes(DATA)
    (shared / "sentinel").write_bytes(b"must survive")
    redis.cli("RPUSH", INDEX, entry(), *JUNK)
    a = make_node(redis, "--keep-files", "2", data_dir=shared)
    alice, = users((a, "alice"))
    assert listed_names(alice) == ["good.txt"]
    assert f"skipped {len(JUNK)} malformed entries of the file index" in a.log()
    assert download(alice, "good.txt")[1] == DATA
    alice.say("/download ../sentinel")
    assert alice.answer() == "! no such file: ../sentinel"
    # The next commit drops the junk; nothing outside files/ is touched.
    assert upload(alice, "new.txt", b"new").startswith("*** stored new.txt")
    assert listed_names(alice) == ["new.txt", "good.txt"]
    assert [json.loads(raw)["name"] for raw in
            redis.cli("LRANGE", INDEX, "0", "-1").splitlines()] == ["new.txt", "good.txt"]
    assert (shared / "sentinel").read_bytes() == b"must survive"
    assert len(os.listdir(shared / "files")) == 2
    assert a.proc.poll() is None


def test_an_index_key_of_the_wrong_type_is_set_aside(redis, make_node, tmp_path):
    redis.cli("SET", INDEX, "not a list")
    a = make_node(redis, data_dir=tmp_path / "shared")
    alice = a.client()
    alice.say("/files")
    assert alice.answer() == "- no files shared yet"
    assert upload(alice, "after.txt", b"ok").startswith("*** stored after.txt")
    assert listed_names(alice) == ["after.txt"]
    assert redis.cli("GET", INDEX + ":unreadable") == "not a list"


def announcement(kind, **fields):
    return json.dumps({"v": 2, "node": FORGED_NODE, "kind": kind, **fields})


JUNK_NOTICES = [
    announcement("shared", room="lobby", name="eve", file="a/b", size="1"),
    announcement("shared", room="lobby", name="eve", file="..", size="1"),
    announcement("shared", room="lobby", name="eve", file="x\x1b[2J", size="1"),
    announcement("shared", room="lobby", name="eve", file="x", size="-1"),
    announcement("shared", room="lobby", name="eve", file="x", size="1e9"),
    announcement("shared", room="lobby", name="eve", file="x", size=1),
    announcement("shared", room="lobby", name="eve", file="x", size="9" * 21),
    announcement("shared", room="", name="eve", file="x", size="1"),
    announcement("shared", room="lobby", name="eve> <x", file="x", size="1"),
    announcement("shared", room="lobby", name="eve", file="x"),
    announcement("removed", file="x", keep="many"),
    announcement("removed", file="x/y", keep="5"),
    announcement("removed", file="x", keep="5", room="lobby"),
]


def test_junk_file_announcements_are_skipped(redis, make_node, tmp_path):
    a = make_node(redis, data_dir=tmp_path / "shared")
    alice, = users((a, "alice"))
    for junk in JUNK_NOTICES:
        assert redis.command("PUBLISH", LOBBY, junk) == b":1"
    redis.command("PUBLISH", LOBBY, announcement("removed", file="old.txt", keep="5"))
    assert alice.line() == "*** old.txt was removed (only the 5 newest files are kept)"
    assert a.log().count("skipped a malformed message") == len(JUNK_NOTICES)


def test_junk_is_dropped_by_a_commit_even_with_slots_free(redis, make_node, tmp_path):
    bad_ids = [raw for raw in JUNK if parse_entry(raw) is None and not (
        raw.startswith("{") and json.loads(raw).get("id") == GOOD_ID)]
    assert len(bad_ids) == 7  # not JSON, not an object, or an id no node writes
    redis.cli("RPUSH", INDEX, *bad_ids)
    a = make_node(redis, "--keep-files", "10", data_dir=tmp_path / "shared")
    alice = a.client()
    assert upload(alice, "only.txt", b"1").startswith("*** stored only.txt")
    assert [json.loads(raw)["name"] for raw in
            redis.cli("LRANGE", INDEX, "0", "-1").splitlines()] == ["only.txt"]
