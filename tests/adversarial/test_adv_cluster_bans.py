"""
Hostile cases of the cluster's bans: forged and malformed ``ban`` and
``unban`` messages on the bus, and junk in the Redis bans hash, are logged
and skipped (never a crash, never a ban nobody made); a bans key that is
not a hash is refused clearly; while Redis is away ``/ban`` and ``/unban``
answer the one-line link-down error and the node keeps refusing what it
last loaded.
"""

import json

import pytest
from twisted.internet import defer, task

from chatd.cluster.bans import ClusterBans, RedisBanStore, parse_record
from chatd.cluster.hub import ClusterHub
from chatd.cluster.link import LinkDown
from chatd.cluster.scripts import Keys
from chatd.grammar import ChatError
from cluster_helpers import cluster_operator, no_traceback, refused, synced, users
from redis_server import make_node, own_redis, redis, session_redis  # noqa: F401

LOBBY = "chatd:0:room:lobby"
BANS = "chatd:0:bans"
FORGED_NODE = "deadbeefdeadbeef"
CHEAP = ("--hash-memory", "8K")
LINK_DOWN = "! the cluster link is down; try again in a moment"
GOOD = '{"until":"forever","reason":"","by":"boss"}'


def forged(kind, **fields):
    return json.dumps({"v": 2, "node": FORGED_NODE, "kind": kind, **fields})


def ban(target="bob", until="forever", reason="", by="boss", **extra):
    return forged("ban", target=target, until=until, reason=reason, by=by, **extra)


def inbox(node):
    return f"chatd:0:node:{node.node_id}:inbox"





MALFORMED = [
    ban(target="Bob"),  # not a name key
    ban(target="bo b"),
    ban(target="b" * 33),
    ban(target=""),
    ban(target="127.0.0.2/32"),  # an address, not in normal form
    ban(target="::ffff:127.0.0.2"),
    ban(target="127.0.0.0/8 "),
    ban(target="no/such"),
    ban(target=["bob"]),
    ban(until="0"),
    ban(until="0.0"),
    ban(until="-5.0"),
    ban(until="1.50"),  # not as repr writes it
    ban(until="1e3"),
    ban(until="nan"),
    ban(until="inf"),
    ban(until="Forever"),
    ban(until=""),
    ban(until="\u0661\u0660.0"),  # Arabic-Indic digits
    ban(until=1718000000.5),
    ban(until=None),
    ban(reason="\x1b[2J"),
    ban(reason="a\r\n*** fake notice"),
    ban(reason="\ud800"),
    ban(reason=7),
    ban(reason="x" * 70000),  # longer than any message
    ban(by="eve> <x"),
    ban(by=""),
    ban(extra="x"),
    forged("ban", target="bob", until="forever", reason=""),  # no by
    forged("unban", target="Bob", by="boss"),
    forged("unban", target="127.0.0.2/32", by="boss"),
    forged("unban", target="bob"),
    forged("unban", target="bob", by="boss", until="forever"),
    forged("unban", target="bob", by=None),
    "[" * 30000 + "]" * 30000,  # nested past the recursion limit
]


def test_malformed_ban_messages_are_logged_and_skipped(redis, make_node):
    a, b = make_node(redis, *CHEAP), make_node(redis, *CHEAP)
    alice, bob = users((a, "alice"), (b, "bob"))
    boss = cluster_operator(redis, b)
    for junk in MALFORMED:
        assert redis.command("PUBLISH", inbox(b), junk) == b":1"
        assert redis.command("PUBLISH", LOBBY, junk) == b":2"
    bob.say("still here")
    assert alice.expect("<bob>") == "<bob> still here"
    synced(alice, bob)
    boss.say("/bans")
    assert boss.expect("- bans") == "- bans (0)"
    b.client(source="127.0.0.2")  # greeted
    for node in (a, b):
        log = node.log()
        assert log.count("skipped a malformed message") == len(MALFORMED) * (1 + (node is b))
        assert "operator boss on node" not in log
    no_traceback(a, b)


def test_a_well_formed_ban_from_the_bus_is_held_and_lifted(redis, make_node):
    # The bus is trusted once its shape is right (only a Redis client can
    # publish): a ban and an unban in the form a node writes act as one.
    node = make_node(redis, *CHEAP)
    until = repr(9e9)
    redis.command("PUBLISH", LOBBY, ban(target="127.0.0.5", until=until, reason="x"))
    node.wait_log("ban 127.0.0.5 (address)")
    assert refused(node, "127.0.0.5").startswith("! banned from this server (x) for ")
    redis.command("PUBLISH", LOBBY, forged("unban", target="127.0.0.5", by="boss"))
    node.wait_log("unban 127.0.0.5")
    node.client(source="127.0.0.5")  # greeted
    no_traceback(node)


JUNK = [
    (b"bob", b"not json"),
    (b"bob2", b'{"until":"forever","reason":""}'),  # no by
    (b"bob3", b'{"until":"forever","reason":"","by":"boss","extra":1}'),
    (b"Carol", GOOD.encode()),  # not a name key
    (b"10.0.0.1/32", GOOD.encode()),  # not in normal form
    (b"no/such", GOOD.encode()),
    (b"\xff\xfe", GOOD.encode()),  # a target that is not UTF-8
    (b"dave", b'{"until":1718000000.5,"reason":"","by":"boss"}'),  # not a string
    (b"erin", b'{"until":"1.50","reason":"","by":"boss"}'),
    (b"frank", b'{"until":"forever","reason":"\\u001b[2J","by":"boss"}'),
    (b"gina", b'{"until":"forever","reason":"","by":"eve> <x"}'),
    (b"hank", b"[" * 30000 + b"]" * 30000),  # nested past the recursion limit
    (b"ivan", b"\xff\xfe"),  # not UTF-8
    (b"jack", b'"a string"'),
    (b"kate", b'{"until":"forever","by":"boss","reason":"' + b"x" * 70000 + b'"}'),  # too long
    (b"liam", b'{"until":"forever","reason":"\\ud800","by":"boss"}'),
]


def test_junk_in_the_bans_hash_is_logged_and_skipped(redis, make_node):
    fields = [part for pair in JUNK for part in pair]
    valid = (b"127.0.0.4", b'{"until":"forever","reason":"hand-written","by":"boss"}')
    assert redis.command("HSET", BANS, *fields, *valid) == b":%d" % (len(JUNK) + 1)
    node = make_node(redis, *CHEAP)
    node.wait_log("1 bans loaded from redis")
    assert node.log().count("skipped a malformed ban in redis") == len(JUNK)
    assert refused(node, "127.0.0.4") == "! banned from this server (hand-written)"
    boss = cluster_operator(redis, node)
    boss.say("/bans")
    assert boss.expect("- bans") == "- bans (1):"
    assert boss.line() == "- 127.0.0.4 (address) by boss, forever: hand-written"
    no_traceback(node)


def test_a_bans_key_that_is_not_a_hash_is_refused_clearly(redis, make_node):
    redis.cli("SET", BANS, "junk")
    node = make_node(redis, *CHEAP)
    node.wait_log("bans not loaded from redis")
    boss = cluster_operator(redis, node)
    boss.say("/ban mallory")
    assert boss.expect("! ") == "! the bans in redis are damaged; an operator must repair them"
    boss.say("/unban mallory")
    assert boss.expect("! ") == "! the bans in redis are damaged; an operator must repair them"
    assert redis.cli("GET", BANS) == "junk"  # left for an operator to look at
    no_traceback(node)


def test_redis_gone_ban_commands_answer_link_down_and_the_bans_still_hold(own_redis,
                                                                          make_node):
    node = make_node(own_redis, *CHEAP)
    boss = cluster_operator(own_redis, node)
    boss.say("/ban 127.0.0.6 2h")
    assert boss.expect("- banned") == "- banned 127.0.0.6 for 2h"
    own_redis.stop()
    boss.expect("*** cluster link lost")
    for line in ("/ban mallory", "/ban 127.0.0.9 1h", "/unban 127.0.0.6", "/bans"):
        boss.say(line)
        assert boss.expect("!") == LINK_DOWN, line
    assert refused(node, "127.0.0.6") == "! banned from this server for 2h"
    node.client(source="127.0.0.9")  # never banned
    no_traceback(node)


# --- the store itself, without Redis ----------------------------------------

class _DownLink:
    up = False

    def call(self, *args):
        return defer.fail(LinkDown("the redis link is down"))


class _Hub:
    node = FORGED_NODE
    keys = Keys(0)
    link = _DownLink()
    _link_failed = ClusterHub._link_failed


def _failure(d):
    failures = []
    d.addErrback(failures.append)
    assert len(failures) == 1
    return failures[0].value


def test_the_store_refuses_a_change_while_the_link_is_down():
    clock = task.Clock()
    bans = ClusterBans(RedisBanStore(_Hub()), clock)
    for d in (bans.add("mallory", None, "", "boss"), bans.remove("mallory", "boss"),
              bans.add("10.0.0.0/8", 60.0, "", "boss", "Boss")):
        error = _failure(d)
        assert isinstance(error, ChatError) and error.message == LINK_DOWN[2:]
    assert list(bans) == [] and bans.for_account("mallory") is None


def _as_redis_gives(raw):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw  # txredisapi hands over bytes that are not UTF-8


@pytest.mark.parametrize("target, raw", JUNK)
def test_junk_records_do_not_parse(target, raw):
    assert parse_record(_as_redis_gives(target), _as_redis_gives(raw)) is None
    assert parse_record("bob", GOOD)[1] == "boss"  # what a node writes does
