"""
The cluster's pure parts: the bus format, ``--redis`` URLs, the directory
of users elsewhere.
"""

import json

import pytest

from chatd.cluster import bus
from chatd.cluster.config import RedisAddress, parse_redis_url
from chatd.cluster.directory import RemoteUsers

NODE = "0123456789abcdef"


@pytest.mark.parametrize("kind, fields", [
    ("say", {"room": "lobby", "name": "alice", "text": "hi \ufffd there"}),
    ("act", {"room": "Dev.ops", "name": "alice", "text": "waves"}),
    ("enter", {"room": "dev", "name": "alice"}),
    ("part", {"room": "dev", "name": "alice", "reason": "bye"}),
    ("topic", {"room": "dev", "name": "alice", "text": "t" * 300}),
    ("join", {"name": "guest7"}),
    ("left", {"name": "bob", "reason": ""}),
    ("rename", {"old": "guest7", "new": "Zed"}),
    ("private", {"to": "zed", "name": "alice", "text": "psst"}),
    ("sync", {}),
    ("taken", {"to": "zed"}),
])
def test_what_a_node_publishes_reads_back(kind, fields):
    assert bus.decode(bus.encode(NODE, kind, **fields)) == bus.BusMessage(NODE, kind, fields)
    assert bus.decode(bus.encode(NODE, kind, **fields).encode("utf-8")).fields == fields


@pytest.mark.parametrize("message, why", [
    ({"v": 2, "node": NODE, "kind": "private", "to": "Zed", "name": "a", "text": "x"},
     "not a name key"),
    ({"v": 2, "node": NODE, "kind": "say", "room": "lobby", "name": "a", "text": "\x00"},
     "control characters"),
    ({"v": 2, "node": NODE, "kind": "say", "room": "lobby", "name": "a", "text": "\u2028"},
     "control characters"),
    ({"v": 2, "node": NODE, "kind": "say", "room": "lobby", "name": "files", "text": "x"},
     "not a valid name"),
    ({"v": 2, "node": NODE, "kind": "say", "room": "#dev", "name": "a", "text": "x"},
     "not a room name"),
    ({"v": 2, "node": NODE, "kind": "enter", "room": "", "name": "a"}, "not a room name"),
    ({"v": 2, "node": NODE, "kind": "topic", "room": "dev", "name": "a", "text": "t" * 301},
     "longer than a topic"),
    ({"v": 2, "node": NODE, "kind": "say", "name": "a", "text": "x"}, "exactly the fields"),
    ({"v": 2, "node": NODE, "kind": "sync", "name": "a"}, "exactly the fields none"),
    ({"v": True, "node": NODE, "kind": "sync"}, "version"),
    ({"v": 1, "node": NODE, "kind": "sync"}, "version"),  # before rooms
    ({"v": 2, "node": NODE * 3, "kind": "sync"}, "node id"),
])
def test_what_no_node_publishes_is_malformed(message, why):
    with pytest.raises(bus.Malformed, match=why):
        bus.decode(json.dumps(message))


def test_redis_urls():
    assert parse_redis_url("redis://localhost") == RedisAddress("localhost", 6379, 0)
    assert parse_redis_url("redis://10.0.0.5:7000/3") == RedisAddress("10.0.0.5", 7000, 3)
    secret = parse_redis_url("redis://:s%40cret@[::1]:7000/1")
    assert secret == RedisAddress("::1", 7000, 1, "s@cret")
    assert "cret" not in str(secret) + repr(secret)  # the address is logged
    assert str(secret) == "redis://[::1]:7000/1"


def test_a_reload_keeps_what_the_bus_said_meanwhile():
    users = RemoteUsers()
    users.add("n1", "old")
    users.reloading()
    users.change("rename", "n2", "zed", "guest9")  # heard after the snapshot was asked
    users.change("remove", "n1", "old")
    users.load([("n1", "old"), ("n2", "zed")])  # the older snapshot
    assert sorted(users.names()) == ["guest9"]
    assert users.find("GUEST9") == ("n2", "guest9") and len(users) == 1
    users.change("add", "n3", "later")
    users.reloading()
    users.load(None)  # the snapshot never came
    assert sorted(users.names()) == ["guest9", "later"]
