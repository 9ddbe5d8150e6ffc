"""
Hostile cases of the cluster's shared history: junk written straight into
Redis's history keys (entries, room names, topics, keys of the wrong type)
is skipped, never crashes a node and never reaches a user; what users say
is clean before it is kept.
"""

import json

import pytest

from cluster_helpers import users
from daemon import Daemon
from redis_server import redis, session_redis, wait_for  # noqa: F401

DEV = "chatd:0:history:room:dev"
RANKING = "chatd:0:history:rooms"

JUNK_ENTRIES = [
    b"not json",
    b"\xff\xfe not utf-8",
    b"[1]",
    b'[1, "x", 3]',
    b'{"at": 1, "line": "x"}',
    b'["1", "a time that is text"]',
    b'[true, "a time that is a boolean"]',
    b'[NaN, "not a number"]',
    b'[Infinity, "forever"]',
    b'[1e300, "past any calendar"]',
    b'[-5, "before 1970"]',
    b'[1, ""]',
    b'[1, 5]',
    b'[1, ["nested"]]',
    b'[1, "\\u001b[2Jcleared your screen"]',
    b'[1, "two\\r\\nlines"]',
    b'[1, "\\u202ereversed"]',
    b'[1, "lone \\ud800 surrogate"]',
    b'[1, "' + b"x" * 20000 + b'"]',
    b"",
]


@pytest.fixture
def make_node(tmp_path):
    """
    ``make_node(redis)``: a node joined to ``redis`` (the adversarial
    ``make_daemon`` settles on a node of its own, not one of a cluster).
    """
    started = []

    def start(redis):
        before = redis.nodes()
        d = Daemon(tmp_path / f"node{len(started)}", "--redis", redis.url)
        started.append(d)
        d.start()
        wait_for(lambda: redis.nodes() - before, "the node to join the cluster")
        return d
    yield start
    for d in started:
        d.stop()


def history(client, room):
    client.say(f"/history {room} 50")
    lines = client.lines_until(f"- end of history of #{room}")
    return [line.split("] ", 1)[1] for line in lines if line.startswith("= [")]


def joined(node, room):
    """
    A new user on ``node`` who joined ``room``: the lines replayed to it.
    """
    client = node.client()
    client.say(f"/join {room}")
    lines = client.lines_until(lambda l: l.startswith("*** you are in #"))
    return client, [line.split("] ", 1)[1] for line in lines if line.startswith("= [")]


def test_junk_entries_in_a_rooms_list_are_skipped(redis, make_node):
    a = make_node(redis)
    (alice,) = users((a, "alice"))
    alice.say("/join dev")
    alice.say("one")
    wait_for(lambda: redis.cli("LLEN", DEV) == "1", "the first line in redis")
    for junk in JUNK_ENTRIES:
        assert redis.command("RPUSH", DEV, junk).startswith(b":")
    alice.say("two")
    assert history(alice, "dev") == ["<alice> one", "<alice> two"]
    b = make_node(redis)  # loads its rings from the list with the junk in it
    bob, replayed = joined(b, "dev")
    assert replayed == ["<alice> one", "<alice> two"]
    assert history(bob, "dev") == ["<alice> one", "<alice> two"]
    bob.say("still fine")
    assert alice.expect("<") == f"<{bob.name}> still fine"
    assert "Traceback" not in a.log() + b.log()


def test_junk_rooms_names_and_topics_are_skipped(redis, make_node):
    a = make_node(redis)
    (alice,) = users((a, "alice"))
    alice.say("/join Dev")
    alice.say("/topic Dev the plan")
    alice.say("kept")
    wait_for(lambda: redis.cli("LLEN", DEV) == "2", "the lines in redis")
    for member in ("not a room!", "UPPER", "x" * 40, "../etc", "\x1b[2J"):
        redis.command("ZADD", RANKING, "9999999999", member)
        redis.command("RPUSH", f"chatd:0:history:room:{member}", json.dumps([1, "junk room"]))
    redis.command("HSET", "chatd:0:history:names", "dev", "not a name!")  # shown as #dev
    redis.command("HSET", "chatd:0:history:topics", "dev", "\x1b[2Jevil topic")
    redis.command("ZADD", RANKING, "9999999999", "wrong")
    redis.command("SET", "chatd:0:history:room:wrong", "a string, not a list")
    b = make_node(redis)
    bob, replayed = joined(b, "dev")
    assert replayed == ["*** alice set the topic of #Dev: the plan", "<alice> kept"]
    bob.say("/topic")
    shown = bob.expect(lambda l: l.startswith(("- topic of #", "- no topic for #")))
    assert shown.endswith(("#dev", "#dev: the plan"))  # never the junk one
    bob.say("/rooms")
    listed = bob.expect("- rooms").split(": ", 1)[1]
    assert [room.split(" (")[0] for room in listed.split(", ")] == ["#lobby", "#dev"]
    # A key of the wrong type: lines are said, not written; /history says so.
    bob.say("/join wrong")
    bob.say("said anyway")
    bob.say("/history")
    assert bob.expect("! ") == "! history is unavailable just now"
    bob.say("/join dev")
    bob.say("and on")
    assert alice.expect("<") == f"<{bob.name}> and on"


def test_a_ranking_of_the_wrong_type_leaves_a_working_node(redis, make_node):
    redis.command("SET", RANKING, "not a sorted set")
    a = make_node(redis)
    wait_for(lambda: "history not loaded from redis" in a.log(), "the failed load logged")
    alice, bob = users((a, "alice"), (a, "bob"))
    alice.say("hello")
    assert bob.expect("<alice>") == "<alice> hello"


def test_what_users_say_is_clean_in_redis(redis, make_node):
    a = make_node(redis)
    (alice,) = users((a, "alice"))
    alice.send("\x1b[31mred\x07 \u202eflip\r\n".encode("utf-8"))
    wait_for(lambda: redis.cli("LLEN", "chatd:0:history:room:lobby") == "1", "the line kept")
    entry = redis.cli("LINDEX", "chatd:0:history:room:lobby", "0")
    when, line = json.loads(entry)
    assert line == "<alice> \ufffd[31mred\ufffd \ufffdflip"
