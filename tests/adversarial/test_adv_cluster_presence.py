"""
Hostile cases of cluster-wide presence: forged or malformed presence
messages on the bus, junk memberships and topics written straight into
Redis, and a user giving topics to more rooms than a node keeps.
"""

import json

from cluster_helpers import synced, users, who_in
from redis_server import make_node, redis, session_redis, wait_for  # noqa: F401

LOBBY = "chatd:0:room:lobby"
FORGED_NODE = "deadbeefdeadbeef"


def forged(kind, **fields):
    return json.dumps({"v": 2, "node": FORGED_NODE, "kind": kind, **fields})


def _in_dev(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob = users((a, "alice"), (b, "bob"))
    alice.say("/join #dev")
    alice.expect("*** you are in #dev")
    synced(alice, bob)
    return a, b, alice, bob


BAD_ROOMS = [
    forged("enter", room="#dev", name="eve"),  # the "#" is never published
    forged("enter", room="dev ops", name="eve"),
    forged("enter", room="", name="eve"),
    forged("enter", room="d" * 33, name="eve"),
    forged("enter", room="d\u00e9v", name="eve"),
    forged("enter", room=["dev"], name="eve"),
    forged("enter", room="dev", name="e ve"),
    forged("part", room="dev\r\n", name="alice", reason=""),
    forged("part", room=None, name="alice", reason=""),
    forged("topic", room="../dev", name="eve", text="owned"),
]


def test_presence_messages_with_bad_rooms_are_skipped(redis, make_node):
    a, b, alice, bob = _in_dev(redis, make_node)
    for junk in BAD_ROOMS:
        assert redis.command("PUBLISH", LOBBY, junk) == b":2"
    bob.say("/join #dev")  # a line after the junk, on both nodes
    assert alice.expect("*** bob") == "*** bob joined #dev"
    synced(bob, alice)
    assert who_in(alice, "dev") == who_in(bob, "dev") == (2, ["alice", "bob"])
    bob.say("/rooms")
    assert bob.expect("- rooms") == "- rooms (2): #lobby (2), #dev (2)"
    for node in (a, b):
        assert node.log().count("skipped a malformed message") == len(BAD_ROOMS)
        assert node.proc.poll() is None


def test_a_forged_node_cannot_take_a_real_users_presence(redis, make_node):
    a, b, alice, bob = _in_dev(redis, make_node)
    # Well formed, from a node that is not in the cluster: what it says of
    # alice is about its own (unknown) alice, never the real one on a.
    redis.command("PUBLISH", LOBBY, forged("part", room="dev", name="alice", reason=""))
    redis.command("PUBLISH", LOBBY, forged("enter", room="dev", name="ghost"))
    synced(alice, bob)
    assert who_in(bob, "dev") == (2, ["alice", "ghost"])
    bob.say("/msg alice still here")
    assert alice.expect("[private]") == "[private] <bob> still here"
    # Its members are not in Redis: the next reload (any node's sync) drops them.
    redis.command("PUBLISH", LOBBY, forged("sync"))
    wait_for(lambda: who_in(bob, "dev") == (1, ["alice"]), "the forged member dropped")


def test_junk_memberships_and_topics_in_redis_are_skipped(redis, make_node):
    a, b, alice, bob = _in_dev(redis, make_node)
    mine = f"chatd:0:node:{a.node_id}:rooms"
    for field, value in [("eve", "eve #dev"), ("e ve", "e ve dev"), ("x", ""),
                         ("mallory", "mallory dev\x1b[2J"), ("zed", "zed " + "d" * 40)]:
        redis.cli("HSET", mine, field, value)
    for field, value in [("ops", "ops"), ("ops2", "ops \x07bell"), ("qa", "QA " + "t" * 301),
                         ("web", "www fine"), ("sec", "sec fine")]:
        redis.cli("HSET", "chatd:0:topics", field, value)
    redis.command("PUBLISH", LOBBY, forged("sync"))  # both nodes reload
    wait_for(lambda: "skipped 5 malformed memberships" in b.log(), "the reload on b")
    assert who_in(bob, "dev") == (1, ["alice"])
    for user in (alice, bob):  # (so the new node's start-up probe is alone in the lobby)
        user.say("/part #lobby")
        user.expect("*** you left #lobby")
    c = make_node(redis)  # takes the topics at its start, then the members
    wait_for(lambda: "skipped 5 malformed memberships" in c.log(), "c's first load")
    assert "skipped 4 malformed topics" in c.log()
    carol = c.client()
    carol.say("/rooms")
    assert carol.expect("- rooms") == "- rooms (3): #lobby (1), #dev (1), #sec (0: fine)"
    for node in (a, b, c):
        assert node.proc.poll() is None and "Traceback" not in node.log()


def test_topics_kept_in_redis_are_capped(redis, make_node):
    a = make_node(redis, "--max-rooms", "3")
    alice, = users((a, "alice"))
    for i in range(6):
        alice.say(f"/join #r{i}")
        alice.say(f"/topic #r{i} topic {i}")
        alice.expect(f"*** alice set the topic of #r{i}")
        alice.say(f"/part #r{i}")
        alice.expect(f"*** you left #r{i}")
    assert redis.cli("HLEN", "chatd:0:topics") == "3"
    assert sorted(redis.cli("HKEYS", "chatd:0:topics").split()) == ["r3", "r4", "r5"]
    alice.say("/who #nowhere")
    assert alice.expect("! ") == "! no such room: #nowhere"
    alice.say("/who #bad!room")
    assert alice.expect("! ").startswith("! bad room name: #bad!room")
