"""
Hostile cases of the cluster: bad ``--redis``/``--reuse-port`` options,
a Redis nobody answers on, junk and forged messages on the bus, and
hostile input that must reach Redis already clean.
"""

import json
import subprocess

import pytest
from twisted.python import usage

from chatd import tap
from cluster_helpers import users
from daemon import TWISTD, Daemon, free_port
from redis_server import redis, session_redis, wait_for  # noqa: F401

LOBBY = "chatd:0:room:lobby"
FORGED_NODE = "deadbeefdeadbeef"


@pytest.mark.parametrize("url, message", [
    ("localhost:6379", "must start with redis://"),
    ("http://localhost", "must start with redis://"),
    ("redis://", "has no host"),
    ("redis://h:99999", "not a redis://HOST:PORT/DB URL"),
    ("redis://h:0", "port must be from 1 to 65535"),
    ("redis://h:six", "not a redis://HOST:PORT/DB URL"),
    ("redis://h/db1", "database must be a number"),
    ("redis://h/-1", "database must be a number"),
    ("redis://h/1?ssl=1", "takes no ?query"),
    ("redis://user:pw@h", "no user name"),
    ("redis://h/\u0661", "database must be a number"),  # an Arabic-Indic one
])
def test_bad_redis_urls_are_usage_errors(url, message):
    with pytest.raises(usage.UsageError) as e:
        tap.Options().parseOptions(["--redis", url])
    assert message in str(e.value) and "--redis" in str(e.value)


@pytest.mark.parametrize("args, message", [
    (["--redis", "ftp://x"], "--redis 'ftp://x': must start with redis://"),
    (["--mode", "pair", "--redis", "redis://127.0.0.1"], "cannot join a --redis cluster"),
    (["--reuse-port", "--no-plain", "--listen", "tcp:0"], "--reuse-port applies to --port"),
])
def test_twistd_refuses_bad_cluster_options(tmp_path, args, message):
    result = subprocess.run([TWISTD, "-n", "--pidfile=", "chatd", *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output
    assert "Traceback" not in output


def test_reuse_port_refuses_a_port_held_without_it(tmp_path):
    holder = Daemon(tmp_path / "a").start()
    second = Daemon(tmp_path / "b", "--reuse-port", port=holder.port)
    try:
        second.start()  # returns at once: the holder answers on the port
        assert second.proc.wait(15) != 0
        assert "Address already in use" in second.log()
        assert holder.client().name  # the holder is untouched
    finally:
        second.stop()
        holder.stop()


@pytest.fixture
def nodes(tmp_path):
    started = []

    def start(*args):
        d = Daemon(tmp_path / f"node{len(started)}", *args)
        started.append(d)
        return d.start()
    yield start
    for d in started:
        d.stop()


def test_nobody_answering_on_redis_leaves_a_working_node(nodes):
    node = nodes("--redis", f"redis://127.0.0.1:{free_port()}/0")
    a, b = node.client(), node.client()
    a.say("hello")
    assert b.expect("<") == f"<{a.name}> hello"
    wait_for(lambda: "attempt 2 failed, next in" in node.log(), "a logged retry")


def _two_nodes(redis, nodes):
    a = nodes("--redis", redis.url)
    b = nodes("--redis", redis.url)
    wait_for(lambda: len(redis.nodes()) == 2, "both nodes in the cluster")
    alice, bob = users((a, "alice"), (b, "bob"))
    return a, b, alice, bob


JUNK = [
    b"not json",
    b"\xff\xfe not utf-8",
    b"[1, 2]",
    # the version before rooms
    json.dumps({"v": 1, "node": FORGED_NODE, "kind": "say", "name": "eve", "text": "x"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "say", "name": "eve", "text": "x"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "say", "room": "#lobby", "name": "eve",
                "text": "x"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "say", "room": "lob by", "name": "eve",
                "text": "x"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "enter", "room": "x" * 40,
                "name": "eve"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "part", "room": "lobby", "name": "eve",
                "reason": "\x1b[2J"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "topic", "room": "lobby", "name": "eve",
                "text": "t" * 301}).encode(),
    json.dumps({"v": 2, "node": "NOT-HEX", "kind": "say", "room": "lobby", "name": "eve",
                "text": "x"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "shout", "name": "eve",
                "text": "x"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "say", "room": "lobby",
                "name": "eve"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "say", "room": "lobby", "name": "eve",
                "text": "x", "extra": 1}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "say", "room": "lobby", "name": "eve> <x",
                "text": "x"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "say", "room": "lobby", "name": "admin",
                "text": "x"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "say", "room": "lobby", "name": "eve",
                "text": "\x1b[2J\x1b]0;owned\x07"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "say", "room": "lobby", "name": "eve",
                "text": "a\r\n*** fake notice"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "say", "room": "lobby", "name": "eve",
                "text": "\ud800"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "say", "room": "lobby", "name": "eve",
                "text": 42}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "private", "to": "Bob", "name": "eve",
                "text": "x"}).encode(),
    json.dumps({"v": 2, "node": FORGED_NODE, "kind": "say", "room": "lobby", "name": "eve",
                "text": "x" * 70000}).encode(),
    b"{" * 100000,
]


def test_junk_on_the_bus_is_logged_and_skipped(redis, nodes):
    a, b, alice, bob = _two_nodes(redis, nodes)
    for junk in JUNK:
        assert redis.command("PUBLISH", LOBBY, junk) == b":2"  # both nodes got it
    valid = {"v": 2, "node": FORGED_NODE, "kind": "say", "room": "lobby", "name": "mallory",
             "text": "only me"}
    redis.command("PUBLISH", LOBBY, json.dumps(valid))
    # Of everything published, only the well-formed line arrives, and the
    # nodes still carry chat both ways.
    assert alice.line() == bob.line() == "<mallory> only me"
    alice.say("still fine")
    assert bob.line() == "<alice> still fine"
    for node in (a, b):
        assert node.log().count("skipped a malformed message") == len(JUNK)
        assert node.proc.poll() is None


def test_hostile_input_is_clean_on_the_bus(redis, nodes):
    a, b, alice, bob = _two_nodes(redis, nodes)
    bus = redis.subscribe(LOBBY)
    try:
        alice.send(b"hi \x1b[31mred\x07 \xe2\x80\xae evil \xff\xfe end\r\n")
        published = json.loads(bus.message())
        alice.send("/me \x1b]0;title\x07 waves\n")
        acted = json.loads(bus.message())
    finally:
        bus.close()
    clean = "hi \ufffd[31mred\ufffd \ufffd evil \ufffd\ufffd end"
    assert published == {"v": 2, "node": a_node(redis, a), "kind": "say", "room": "lobby",
                         "name": "alice", "text": clean}
    assert acted["text"] == "\ufffd]0;title\ufffd waves"
    assert bob.line() == f"<alice> {clean}"
    assert bob.line() == "* alice \ufffd]0;title\ufffd waves"


def a_node(redis, daemon):
    """
    The node id of ``daemon`` (the holder of its users' names).
    """
    for value in redis.cli("HVALS", "chatd:0:names").splitlines():
        if value.endswith("|alice"):
            return value.split("|")[0]
    raise AssertionError("alice is not registered")
