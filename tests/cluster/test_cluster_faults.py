"""
A cluster's faults, each against real nodes and a real ``redis-server``:
a node killed, Redis stopped and started again, names that clashed while
it was away.
"""

import time

from cluster_helpers import lines_until, settle, users, who
from redis_server import wait_for

LOST = "*** cluster link lost: only this node's users get your lines until it is back"
RESTORED = "*** cluster link restored"


def test_a_killed_node_departs_within_10s_once_each(redis, make_node):
    a, b, c = (make_node(redis) for _ in range(3))
    alice, bob, bert, carol = users((a, "alice"), (b, "bob"), (b, "bert"), (c, "carol"))
    b.kill9()
    killed = time.monotonic()
    for reader in (alice, carol):
        departures = {reader.expect("*** ", timeout=12), reader.expect("*** ", timeout=12)}
        assert departures == {"*** bob left (server lost)", "*** bert left (server lost)"}
    assert time.monotonic() - killed < 10
    wait_for(lambda: b.node_id not in redis.nodes(), "the dead node's release")
    assert redis.cli("EXISTS", f"chatd:0:node:{b.node_id}") == "0"
    # Once each, and nothing else disturbed: the others still talk.
    for reader in (alice, carol):
        assert lines_until(reader, "- online") == []
    alice.say("still here")
    assert carol.line() == "<alice> still here"
    alice.nick("bob")  # the dead node's names are free
    assert carol.line() == "*** alice is now known as bob"


def test_redis_stopped_then_back(own_redis, make_node):
    a, b = make_node(own_redis), make_node(own_redis)
    alice, amy, bob = users((a, "alice"), (a, "amy"), (b, "bob"))
    own_redis.stop()
    for c in (alice, amy, bob):
        assert c.line() == LOST
    alice.say("only here")
    assert amy.line() == "<alice> only here"
    assert who(alice) == ["alice", "amy"] and who(bob) == ["bob"]
    assert lines_until(bob, "- online") == []
    bob.nick("bobby")  # a node on its own still renames, locally
    own_redis.start()
    for c in (alice, amy, bob):
        assert c.expect(RESTORED, timeout=15) == RESTORED
    settle([alice, amy, bob])
    alice.say("together again")
    assert bob.expect("<alice>") == "<alice> together again"
    assert lines_until(alice, "- online") == []  # one notice each, no more
    assert "next in" in a.log()  # the retries are logged with their back-off


def test_names_that_clashed_while_redis_was_away(own_redis, make_node):
    a, b = make_node(own_redis), make_node(own_redis)
    alice, bob = users((a, "alice"), (b, "bob"))
    own_redis.stop()
    assert alice.line() == LOST and bob.line() == LOST
    alice.nick("zed")  # first
    bob.nick("zed")  # later: loses the name when the link is back
    own_redis.start()
    assert alice.expect(RESTORED, timeout=15) == RESTORED
    notice = bob.expect("*** zed is taken", timeout=15)
    guest = notice.rsplit(" ", 1)[1]
    assert notice == f"*** zed is taken by a user on another server of this chat; you are now {guest}"
    bob.name, alice.name = guest, "zed"
    settle([alice, bob])
    assert own_redis.cli("HGET", "chatd:0:names", "zed").startswith(a.node_id + "|")
