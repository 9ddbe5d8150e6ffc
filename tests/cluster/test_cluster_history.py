"""
History shared by the nodes of a cluster: a room's last lines, kept in
Redis, replay the same on every node, to nodes started later, and after
every node restarted (real ``twistd`` nodes, real ``redis-server``).
"""

import re
import socket
import threading

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from zope.interface import implementer
from zope.interface.verify import verifyObject

from chatd.cluster.config import parse_redis_url
from chatd.cluster.history import RedisHistory
from chatd.cluster.hub import ClusterHub
from chatd.cluster.rings import _merged
from chatd.history import IHistoryStore
from chatd.hub import IChatClient
from cluster_helpers import users
from cutproxy import CutProxy
from redis_server import wait_for

STAMP = re.compile(r"= \[\d{4}-\d\d-\d\d \d\d:\d\d\] ")
LOST = "*** cluster link lost: only this node's users get your lines until it is back"
RESTORED = "*** cluster link restored"


def fresh(node):
    """
    A new user on ``node``, past the lobby's history (sent on connect).
    """
    client = node.client()
    client.say("/who")
    client.expect("- online")
    return client


def replay(client, room):
    """
    The history lines ``client`` gets on ``/join ROOM`` (a room it is not
    in yet), up to their end.
    """
    client.say(f"/join {room}")
    lines = client.lines_until(f"- end of history of #{room}")
    assert client.expect("*** you are in").startswith(f"*** you are in #{room} (")
    return [line for line in lines if line.startswith("= [")]  # not live lines


def shown(client, command, room):
    client.say(command)
    lines = client.lines_until(f"- end of history of #{room}")
    return [line for line in lines if line.startswith("= [")]


def texts(lines):
    """
    The lines without their time stamps (each node stamps a line it heard
    from another node with the time it heard it), checked to have one.
    """
    assert all(STAMP.match(line) for line in lines), lines
    return [STAMP.sub("", line, count=1) for line in lines]


def say_in_dev(alice, bob):
    """
    alice (on one node, in #dev) says lines; bob (on another node, in the
    lobby only) has heard all of them once he hears her next lobby line.
    """
    alice.say("/join dev")
    alice.expect("*** you are in #dev")
    alice.say("/topic dev the plan")
    for n in range(1, 6):
        alice.say(f"line {n}")
    alice.say("/me waves")
    alice.say("/join lobby")
    alice.say("marker")
    assert bob.expect("<alice>") == "<alice> marker"


SAID = ["*** alice set the topic of #dev: the plan",
        *[f"<alice> line {n}" for n in range(1, 6)], "* alice waves"]


def test_a_room_nobody_else_is_in_replays_the_same_on_every_node(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob = users((a, "alice"), (b, "bob"))
    say_in_dev(alice, bob)
    on_a, on_b = replay(fresh(a), "dev"), replay(bob, "dev")
    assert texts(on_a) == texts(on_b) == SAID
    # /history reads Redis: the same lines, stamps and all, from both nodes.
    from_a = shown(alice, "/history dev 50", "dev")
    assert shown(bob, "/history dev 50", "dev") == from_a
    assert texts(from_a) == SAID and from_a == on_a
    # One entry per line: heard lines are not written again.
    assert redis.cli("LLEN", "chatd:0:history:room:dev") == str(len(SAID))


def test_a_node_started_later_replays_the_lines(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob = users((a, "alice"), (b, "bob"))
    say_in_dev(alice, bob)
    alice.say("in the lobby")
    assert bob.expect("<alice>") == "<alice> in the lobby"
    c = make_node(redis)
    carol = c.client(greet=False)  # the lobby's history comes on connect
    assert carol.line().startswith("*** Welcome")
    lobby = carol.lines_until("- end of history of #lobby")[:-1]
    assert texts(lobby)[-2:] == ["<alice> marker", "<alice> in the lobby"]
    assert replay(carol, "dev") == replay(fresh(a), "dev")  # stamps too: both read Redis
    carol.say("/topic")
    assert carol.expect("- topic") == "- topic of #dev: the plan"


def test_history_outlives_every_node(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob = users((a, "alice"), (b, "bob"))
    say_in_dev(alice, bob)
    before = replay(fresh(a), "dev")
    a.stop()
    b.stop()
    c = make_node(redis)  # a fresh --data-dir: nothing from SQLite
    assert replay(fresh(c), "dev") == before


def test_redis_back_empty_gets_the_history_back_from_the_nodes(own_redis, make_node):
    a, b = make_node(own_redis), make_node(own_redis)
    alice, bob = users((a, "alice"), (b, "bob"))
    say_in_dev(alice, bob)
    own_redis.stop()  # no persistence: it comes back empty
    assert alice.expect(LOST) == LOST and bob.expect(LOST) == LOST
    own_redis.start()
    assert alice.expect(RESTORED, timeout=15) == RESTORED
    assert bob.expect(RESTORED, timeout=15) == RESTORED
    # The first node back writes its ring back; the other finds it there.
    wait_for(lambda: own_redis.cli("LLEN", "chatd:0:history:room:dev") == str(len(SAID)),
             "the history of #dev written back")
    bob.say("/join dev")
    bob.expect("*** you are in #dev")
    assert texts(shown(bob, "/history dev", "dev")) == SAID
    c = make_node(own_redis)
    assert texts(replay(fresh(c), "dev")) == SAID


def test_history_while_the_link_is_down_is_this_nodes(own_redis, make_node):
    a = make_node(own_redis)
    (alice,) = users((a, "alice"))
    alice.say("/join dev")
    alice.say("before")
    own_redis.stop()
    assert alice.expect(LOST) == LOST
    alice.say("during")  # not written: counted
    assert texts(shown(alice, "/history 50", "dev")) == ["<alice> before", "<alice> during"]


def test_a_conversation_over_three_nodes_replays_the_same_everywhere(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob = users((a, "alice"), (b, "bob"))
    for c in (alice, bob):
        c.say("/join dev")
    assert alice.expect("*** bob") == "*** bob joined #dev"
    said = []
    for n in range(4):  # each answers the other: one order everywhere
        alice.say(f"question {n}")
        assert bob.expect("<alice>") == f"<alice> question {n}"
        bob.say(f"answer {n}")
        assert alice.expect("<bob>") == f"<bob> answer {n}"
        said += [f"<alice> question {n}", f"<bob> answer {n}"]
    c = make_node(redis)
    carol = c.client()
    carol.nick("carol")
    assert texts(replay(carol, "dev")) == said  # a node started later
    carol.say("from c")
    assert alice.expect("<carol>") == "<carol> from c"
    assert bob.expect("<carol>") == "<carol> from c"
    said.append("<carol> from c")
    for node in (a, b, c):
        assert texts(replay(fresh(node), "dev")) == said
    shown_on = [shown(user, "/history dev 50", "dev") for user in (alice, bob, carol)]
    assert shown_on[0] == shown_on[1] == shown_on[2] and texts(shown_on[0]) == said


class Gate(CutProxy):
    """
    A loopback relay to ``port`` that a test closes (every connection
    through it is cut, new ones are refused) and opens again: one node's
    way to Redis, as a pulled cable is.
    """

    def close(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        except OSError:
            pass
        CutProxy.close(self)

    def open(self):
        self._socks = []  # closed by ``close``
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()


def test_a_node_cut_off_for_a_while_replays_what_the_others_said(redis, make_node,
                                                                  make_daemon):
    gate = Gate(redis.port)
    try:
        before = redis.nodes()
        a = make_daemon("--redis", f"redis://127.0.0.1:{gate.port}/0")
        wait_for(lambda: redis.nodes() - before, "the gated node to join")
        b = make_node(redis)
        alice, bob = users((a, "alice"), (b, "bob"))
        bob.say("/join dev")
        bob.say("before")
        bob.say("/join lobby")
        bob.say("marker 1")
        assert alice.expect("<bob>") == "<bob> marker 1"
        gate.close()
        assert alice.expect(LOST) == LOST
        bob.say("/join dev")
        bob.say("while a was away")
        bob.say("/topic dev set while a was away")
        gate.open()
        assert alice.expect(RESTORED, timeout=15) == RESTORED  # the rings are loaded by then
        assert texts(replay(fresh(a), "dev")) == texts(replay(fresh(b), "dev")) == [
            "<bob> before", "<bob> while a was away",
            "*** bob set the topic of #dev: set while a was away"]
    finally:
        gate.close()


# --- the store and the rings in this process, against the real Redis -------


@implementer(IChatClient)
class Quiet:
    name = None

    def deliver(self, data):
        pass


@pytest.fixture
def hub(redis):
    """
    A started ``ClusterHub`` with a ``RedisHistory`` (rings of 3 lines,
    5 kept in Redis, at most 2 rooms there), once registered.
    """
    hubs = []

    @defer.inlineCallbacks
    def start():
        store = RedisHistory(keep=5, max_rooms=2)
        h = ClusterHub(parse_redis_url(redis.url), reactor, history=3, store=store,
                       max_rooms=10)
        store.attach(h.link, h.keys.prefix)
        hubs.append(h)
        registered = h.when_registered()
        h.start()
        yield registered
        return h
    yield start
    for h in hubs:
        pytest_twisted.blockon(h.stop())


@pytest_twisted.inlineCallbacks
def test_redis_keeps_at_most_keep_lines_of_max_rooms_rooms(hub):
    h = yield hub()
    c = Quiet()
    h.connect(c)
    for room in ("one", "two", "three"):
        h.join(c, room)
        for n in range(7):
            h.say(c, f"{room} {n}")
    kept = yield h.store.recent("three", 50)
    assert [line for _, line in kept] == [f"<{c.name}> three {n}" for n in range(2, 7)]
    assert (yield h.store.recent("one", 50)) == []  # the least active room went
    ranked = yield h.link.call("zrevrange", h.store.rooms, 0, -1)
    assert list(ranked) == ["three", "two"]
    assert [line for _, line in h.rooms["three"].history] == \
        [f"<{c.name}> three {n}" for n in range(4, 7)]  # the ring: 3 lines


@pytest_twisted.inlineCallbacks
def test_a_reload_loads_the_rings_from_redis(hub):
    h = yield hub()
    c = Quiet()
    h.connect(c)
    h.join(c, "dev")
    h.say(c, "said")
    yield h.store.recent("dev", 1)  # written
    h.rooms["dev"].history.clear()
    h.rooms["dev"].history.append((1.0, "only in this ring"))
    yield h._reload_history()
    assert [line for _, line in h.rooms["dev"].history] == [f"<{c.name}> said"]


@pytest.mark.parametrize("saved, heard, merged", [
    ([], [], []),
    (["a", "b"], [], ["a", "b"]),
    ([], ["a"], ["a"]),
    (["a", "b"], ["b", "c"], ["a", "b", "c"]),  # b was in the snapshot already
    (["a", "b"], ["a", "b"], ["a", "b"]),
    (["a", "b"], ["c"], ["a", "b", "c"]),
    (["x", "x"], ["x", "x", "x"], ["x", "x", "x"]),
])
def test_lines_heard_during_a_reload_follow_the_snapshot_once(saved, heard, merged):
    entries = [(float(n), line) for n, line in enumerate(saved)]
    noted = [(10.0 + n, line) for n, line in enumerate(heard)]
    assert [line for _, line in _merged(entries, noted)] == merged


def test_the_redis_store_is_a_history_store():
    store = RedisHistory(keep=5, max_rooms=2)
    assert verifyObject(IHistoryStore, store)
    assert store.load(2, 5) == []  # the rings come from Redis when the link is up
