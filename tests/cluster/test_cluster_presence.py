"""
Presence in every room, cluster-wide: ``/who #ROOM``, ``/rooms``, the
``(N online)`` of ``/join`` and the presence limit count every node's
members; departures and renames are told in every room shared; topics are
kept in Redis (real ``twistd`` nodes, real ``redis-server``).  Each check
waits for an event (``synced``: a private message sent after what is
checked), never for time.
"""

import time

import pytest_twisted
from twisted.internet import defer, reactor

from chatd.cluster.config import parse_redis_url
from chatd.cluster.link import RedisLink
from chatd.cluster.members import RemoteMembers
from chatd.cluster.presence import Presence
from chatd.cluster.scripts import Keys
from cluster_helpers import settle, synced, users, who, who_in
from redis_server import wait_for

RESTORED = "*** cluster link restored"


def asked(client, command, answer):
    """
    The first line starting with ``answer`` after ``client`` says ``command``.
    """
    client.say(command)
    return client.expect(answer)


def test_who_rooms_and_join_count_every_node(redis, make_node):
    a, b, c = (make_node(redis) for _ in range(3))
    alice, dave, bob, carol = users((a, "alice"), (a, "dave"), (b, "bob"), (c, "carol"))
    assert asked(alice, "/join #dev", "*** you are in") == "*** you are in #dev (1 online)"
    synced(alice, bob)
    assert asked(bob, "/join #Dev", "*** you are in") == "*** you are in #Dev (2 online)"
    assert alice.expect("*** bob") == "*** bob joined #dev"
    synced(bob, dave, carol)
    assert asked(dave, "/join dev", "*** you are in") == "*** you are in #dev (3 online)"
    synced(dave, carol, bob)
    # carol's node has nobody in #dev: it knows the room from the others.
    assert who_in(carol, "dev") == (3, ["alice", "bob", "dave"])
    assert who_in(bob, "dev") == (3, ["alice", "bob", "dave"])
    assert asked(carol, "/rooms", "- rooms") == "- rooms (2): #lobby (4), #dev (3)"
    assert asked(bob, "/rooms", "- rooms") == "- rooms (2): #lobby (4), #Dev (3)"
    assert asked(carol, "/topic #dev", "- ") == "- no topic for #dev"
    assert asked(carol, "/part #dev", "! ") == "! you are not in #dev (/join dev)"
    bob.say("/part")
    assert alice.expect("*** bob") == "*** bob left #dev"
    synced(bob, carol)
    assert who_in(carol, "dev") == (2, ["alice", "dave"])


def test_lobby_who_lists_only_those_in_the_lobby(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob, bert = users((a, "alice"), (b, "bob"), (b, "bert"))
    bob.say("/join #dev")
    bob.say("/part #lobby")
    assert alice.expect("*** bob") == "*** bob left #lobby"
    assert who(alice) == ["alice", "bert"]
    assert asked(alice, "/rooms", "- rooms") == "- rooms (2): #lobby (2), #dev (1)"
    bob.say("/join #lobby")
    assert alice.expect("*** bob") == "*** bob joined #lobby"
    assert who(alice) == ["alice", "bert", "bob"]


def test_departures_and_renames_are_told_in_every_shared_room_once(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, carol, bob, dan = users((a, "alice"), (a, "carol"), (b, "bob"), (b, "dan"))
    for room in ("dev", "ops"):
        alice.say(f"/join #{room}")
        alice.expect(f"*** you are in #{room}")
        bob.say(f"/join #{room}")
        assert alice.expect("*** bob") == f"*** bob joined #{room}"
    bob.say("/part #lobby")
    assert alice.expect("*** bob") == "*** bob left #lobby"
    assert carol.expect("*** bob") == "*** bob left #lobby"
    bob.nick("robert")  # shares #dev and #ops with alice, nothing with carol
    assert alice.lines_until("*** bob")[-1] == "*** bob is now known as robert"
    bob.close()
    assert alice.lines_until("*** robert")[-1] == "*** robert left (connection lost)"
    # Once each for alice (in two shared rooms), never for carol.
    assert synced(dan, alice) == []
    assert synced(dan, carol) == []
    assert who_in(alice, "dev") == (1, ["alice"])


def test_the_presence_limit_counts_the_whole_room(redis, make_node):
    a, b = make_node(redis, "--presence-limit", "2"), make_node(redis, "--presence-limit", "2")
    alice, bob, bert = users((a, "alice"), (b, "bob"), (b, "bert"))
    alice.say("/join #dev")
    synced(alice, bob)
    bob.say("/join #dev")  # two in #dev: told
    assert alice.expect("*** bob") == "*** bob joined #dev"
    bert.say("/join #dev")  # three (one on alice's node): not told
    assert synced(bert, alice) == []
    assert who_in(alice, "dev") == (3, ["alice", "bert", "bob"])


def test_a_topic_is_shown_on_entering_the_room_on_any_node(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob = users((a, "alice"), (b, "bob"))
    alice.say("/join #dev")
    assert asked(alice, "/topic #dev release on friday", "*** alice set") == \
        "*** alice set the topic of #dev: release on friday"
    synced(alice, bob)  # b had nobody in #dev when the topic was set
    assert asked(bob, "/join #dev", "*** you are in") == "*** you are in #dev (2 online)"
    assert bob.line() == "- topic of #dev: release on friday"
    for user in (alice, bob):
        user.say("/part #dev")
        user.expect("*** you left #dev")
    # A node started later takes the topics kept in Redis.
    c = make_node(redis)
    carol = c.client()
    carol.nick("carol")
    settle([alice, bob, carol])
    assert asked(carol, "/topic #dev", "- topic") == "- topic of #dev: release on friday"
    assert asked(carol, "/rooms", "- rooms") == \
        "- rooms (2): #lobby (3), #dev (0: release on friday)"
    assert asked(carol, "/join #DEV", "*** you are in") == "*** you are in #dev (1 online)"
    assert carol.line() == "- topic of #dev: release on friday"


def test_a_killed_nodes_members_leave_every_room_within_10s(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob, bert = users((a, "alice"), (b, "bob"), (b, "bert"))
    for c in (alice, bob, bert):
        c.say("/join #dev")
        c.expect("*** you are in #dev")
    synced(bert, alice)
    assert who_in(alice, "dev") == (3, ["alice", "bert", "bob"])
    b.kill9()
    killed = time.monotonic()
    departures = {alice.expect("*** ", timeout=12), alice.expect("*** ", timeout=12)}
    assert departures == {"*** bob left (server lost)", "*** bert left (server lost)"}
    assert time.monotonic() - killed < 10
    assert who_in(alice, "dev") == (1, ["alice"])
    assert asked(alice, "/rooms", "- rooms") == "- rooms (2): #lobby (1), #dev (1)"
    wait_for(lambda: b.node_id not in redis.nodes(), "the dead node's release")
    assert redis.cli("EXISTS", f"chatd:0:node:{b.node_id}:rooms") == "0"


def test_memberships_come_back_with_redis(own_redis, make_node):
    a, b = make_node(own_redis), make_node(own_redis)
    alice, bob = users((a, "alice"), (b, "bob"))
    alice.say("/join #dev")
    bob.say("/join #dev")
    bob.say("/part #lobby")
    assert alice.expect("*** bob left #lobby") == "*** bob left #lobby"
    own_redis.stop()  # an empty Redis comes back: every node writes its members again
    alice.say("/topic #dev set while away")
    alice.expect("*** alice set the topic")
    own_redis.start()
    for c in (alice, bob):
        assert c.expect(RESTORED, timeout=15) == RESTORED
    # Each node reloads the others' members when they say they are back
    # (no line to wait for): ask until the answer is whole.
    for c in (alice, bob):
        wait_for(lambda: who_in(c, "dev") == (2, ["alice", "bob"]), "#dev whole again")
    assert who_in(alice, "lobby") == (1, ["alice"])
    # ... and its topics, where Redis has none.
    wait_for(lambda: own_redis.cli("HGET", "chatd:0:topics", "dev") == "dev set while away",
             "the topic written again")
    wait_for(lambda: asked(bob, "/topic #dev", "- ") == "- topic of #dev: set while away",
             "the other node takes it")


def test_a_reload_keeps_the_rooms_the_bus_told_meanwhile():
    members = RemoteMembers()
    members.add("n1", "old")
    members.reloading()
    members.change("enter", "n1", "old", "dev")
    members.change("rename", "n1", "old", "new")  # heard after the snapshot was asked
    members.change("part", "n1", "new", "lobby")
    members.change("enter", "n2", "zed", "Dev")
    members.load([("n1", "old", ["lobby"]), ("n2", "amy", ["ops", "dev"])])  # older
    assert sorted(members.members("dev")) == ["amy", "new", "zed"]
    assert members.members("lobby") == [] and members.count("ops") == 1
    assert members.rooms_of("n1", "NEW") == ["dev"]
    assert sorted(members.listed()) == [("dev", "dev", 3), ("ops", "ops", 1)]
    members.remove("n2", "amy")
    members.forget_node("n1")
    assert members.listed() == [("dev", "dev", 1)] and members.rooms_of("n1", "new") is None


@pytest_twisted.inlineCallbacks
def test_memberships_and_topics_round_trip_through_redis(redis):
    node, up = "0123456789abcdef", defer.Deferred()
    link = RedisLink(parse_redis_url(redis.url), reactor, ["unused"], lambda *_: None,
                     lambda: up.callback(None), lambda: None)
    link.start()
    try:
        yield up
        keys = Keys(0)
        presence = Presence(link, keys, node, max_topics=2)
        yield link.call("sadd", keys.nodes, node)
        yield presence.replace([("Alice", ["lobby", "dev"]), ("bob", [])])
        yield presence.place("Carol", ["Dev"])
        yield presence.unplace("BOB")
        assert sorted((yield presence.snapshot())) == [
            (node, "Alice", ["lobby", "dev"]), (node, "Carol", ["Dev"])]
        yield presence.replace([])
        assert (yield presence.snapshot()) == []
        for when, room in enumerate(["a", "B", "c"]):
            yield presence.set_topic(room, f"topic {when}", when)
        assert sorted((yield presence.topics())) == [("B", "topic 1"), ("c", "topic 2")]
    finally:
        yield link.stop()
