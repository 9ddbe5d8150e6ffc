"""
Hostile cases of operators across nodes: forged and malformed kick, mute,
unmute and wall messages on the bus are logged and skipped (never a crash,
never the wrong user); a kick for a user the node does not hold does
nothing; non-operators are refused for users on other nodes too; hostile
text from a real operator crosses cleaned.
"""

import json

from cluster_helpers import cluster_operator, synced, users, who
from loopback import register
from redis_server import make_node, redis, session_redis, wait_for  # noqa: F401

LOBBY = "chatd:0:room:lobby"
FORGED_NODE = "deadbeefdeadbeef"
CHEAP = ("--hash-memory", "8K")


def forged(kind, **fields):
    return json.dumps({"v": 2, "node": FORGED_NODE, "kind": kind, **fields})


def inbox(node):
    return f"chatd:0:node:{node.node_id}:inbox"


def _two_nodes(redis, make_node):
    a, b = make_node(redis, *CHEAP), make_node(redis, *CHEAP)
    alice, bob = users((a, "alice"), (b, "bob"))
    return a, b, alice, bob


def _still_free(alice, bob):
    """
    bob (on b) is connected and not muted: a line each way crosses.
    """
    bob.say("still here")
    assert alice.expect(f"<{bob.name}>") == f"<{bob.name}> still here"
    synced(alice, bob)


MALFORMED = [
    forged("kick", to="bob", by="boss"),  # no reason
    forged("kick", to="bob", by="boss", reason="", extra="x"),
    forged("kick", to="Bob", by="boss", reason=""),  # not a name key
    forged("kick", to="bo b", by="boss", reason=""),
    forged("kick", to="b" * 33, by="boss", reason=""),
    forged("kick", to=["bob"], by="boss", reason=""),
    forged("kick", to="bob", by="eve> <x", reason=""),
    forged("kick", to="bob", by="", reason=""),
    forged("kick", to="bob", by="boss", reason="\x1b[2J"),
    forged("kick", to="bob", by="boss", reason="a\r\n*** fake notice"),
    forged("kick", to="bob", by="boss", reason="\ud800"),
    forged("kick", to="bob", by="boss", reason=None),
    forged("kick", to="bob", by="boss", reason="x" * 70000),  # longer than any message
    forged("mute", to="bob", by="boss", seconds="0"),
    forged("mute", to="bob", by="boss", seconds="-5"),
    forged("mute", to="bob", by="boss", seconds="1.5"),
    forged("mute", to="bob", by="boss", seconds="10m"),
    forged("mute", to="bob", by="boss", seconds="0600"),
    forged("mute", to="bob", by="boss", seconds="99999999999"),
    forged("mute", to="bob", by="boss", seconds="\u0661\u0660"),  # Arabic-Indic digits
    forged("mute", to="bob", by="boss", seconds=600),
    forged("mute", to="bob", by="boss", seconds="Forever"),
    forged("mute", to="bob", by="boss", seconds=""),
    forged("mute", to="bob", by="boss"),
    forged("unmute", to="bob"),
    forged("unmute", to="bob", by="boss", seconds="forever"),
    forged("wall", by="boss"),
    forged("wall", to="bob", by="boss", text="hi"),
    forged("wall", by="boss", text="\x1b]0;owned\x07"),
    forged("wall", by="eve> <x", text="hi"),
    forged("wall", by="boss", text=7),
    forged("wall", by="boss", text="x" * 70000),
]


def test_malformed_operator_messages_are_logged_and_skipped(redis, make_node):
    a, b, alice, bob = _two_nodes(redis, make_node)
    for junk in MALFORMED:
        assert redis.command("PUBLISH", inbox(b), junk) == b":1"
        assert redis.command("PUBLISH", LOBBY, junk) == b":2"
    _still_free(alice, bob)
    assert bob.nothing()  # no notice of any of them
    for node in (a, b):
        log = node.log()
        assert log.count("skipped a malformed message") == len(MALFORMED) * (1 + (node is b))
        assert "Traceback" not in log and node.proc.poll() is None


def test_a_kick_for_a_user_the_node_does_not_hold_does_nothing(redis, make_node):
    a, b, alice, bob = _two_nodes(redis, make_node)
    carol = b.client()
    carol.nick("carol")
    # alice is on a, nobody is called zed, and bob is robert by the time
    # the kick for bob arrives: b does nothing, and says so.
    bob.nick("robert")
    for to in ("alice", "zed", "bob"):
        redis.command("PUBLISH", inbox(b), forged("kick", to=to, by="boss", reason="x"))
        redis.command("PUBLISH", inbox(b), forged("mute", to=to, by="boss", seconds="forever"))
    wait_for(lambda: b.log().count("who is not on this node") == 6, "b's log")
    assert "operator boss on node" not in b.log()
    _still_free(alice, bob)
    assert who(carol) == ["alice", "carol", "robert"]
    # A well-formed message for a user b holds is acted on (the bus is
    # trusted once its shape is right: only the Redis holder can publish).
    redis.command("PUBLISH", inbox(b), forged("mute", to="robert", by="boss", seconds="60"))
    assert bob.expect("*** you were") == "*** you were muted by boss for 1m; you can still read"
    assert carol.nothing()
    for node in (a, b):
        assert "Traceback" not in node.log() and node.proc.poll() is None


def test_non_operators_are_refused_for_users_on_other_nodes(redis, make_node):
    a, b, alice, bob = _two_nodes(redis, make_node)
    user = a.client()
    register(user, "user")
    for c in (alice, user):  # a guest, and an account that is no operator
        for line in ("/kick bob", "/mute bob", "/unmute bob", "/wall hi", "/ban bob"):
            c.say(line)
            assert c.expect("! ") == "! operators only", line
    _still_free(alice, bob)
    assert bob.nothing()
    assert "operator " not in b.log()


def test_hostile_text_from_an_operator_crosses_cleaned(redis, make_node):
    a, b = make_node(redis, *CHEAP), make_node(redis, *CHEAP)
    bob, carol = users((b, "bob"), (b, "carol"))
    boss = cluster_operator(redis, a)
    synced(bob, boss)  # a has heard of bob
    boss.send(b"/wall \x1b]0;owned\x07 hi\r\n")
    assert bob.expect("*** notice") == "*** notice from boss: \ufffd]0;owned\ufffd hi"
    boss.send(b"/kick bob \x1b[2Jbye\r\n")
    assert boss.expect("- kicked") == "- kicked bob"
    assert bob.expect("*** you were") == "*** you were kicked by boss: \ufffd[2Jbye"
    assert carol.expect("*** bob left") == "*** bob left (kicked by boss: \ufffd[2Jbye)"
    assert "skipped a malformed message" not in b.log()
