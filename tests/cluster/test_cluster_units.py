"""
The cluster's pieces in this process, against the session's real Redis
(no fakes): hubs on two "nodes", the link's bounds, the release of a dead
node's names.
"""

import socket

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from zope.interface import implementer

from chatd.cluster import bus
from chatd.cluster.config import parse_redis_url
from chatd.cluster.hub import ClusterHub
from chatd.cluster.link import RedisLink
from chatd.cluster.names import ClusterNames
from chatd.cluster.scripts import Keys
from chatd import grammar
from chatd.grammar import ChatError
from chatd.hub import IChatClient
from daemon import free_port


@implementer(IChatClient)
class Recorder:
    """
    A client that keeps its lines, and can wait for the next one.
    """

    name = None

    def __init__(self):
        self.lines = []
        self._waiting = []

    def deliver(self, data):
        for line in data.decode("utf-8").split("\r\n")[:-1]:
            self.lines.append(line)
            waiting, self._waiting = self._waiting, []
            for d, prefix in waiting:
                if line.startswith(prefix):
                    d.callback(line)
                else:
                    self._waiting.append((d, prefix))

    def next_line(self, prefix=""):
        """
        The next line that starts with ``prefix``.
        """
        d = defer.Deferred()
        self._waiting.append((d, prefix))
        return d.addTimeout(5, reactor)


@pytest.fixture
def hubs(redis):
    """
    ``start()``: a ``ClusterHub`` on the session's Redis, once registered.
    """
    started = []

    @defer.inlineCallbacks
    def start(address=None, wait=True):
        hub = ClusterHub(address or parse_redis_url(redis.url), reactor)
        registered = hub.when_registered()
        started.append(hub)
        hub.start()
        if wait:
            yield registered
        return hub

    yield start
    for hub in started:
        pytest_twisted.blockon(hub.stop())


def joined(hub):
    client = Recorder()
    hub.connect(client)
    return client


@pytest_twisted.inlineCallbacks
def test_two_hubs_are_one_lobby(hubs):
    h1, h2 = (yield hubs()), (yield hubs())
    c1 = joined(h1)
    heard = c1.next_line()
    c2 = joined(h2)
    assert (yield heard) == f"*** {c2.name} joined"
    h1.say(c1, "hello")
    assert (yield c2.next_line("<")) == f"<{c1.name}> hello"
    assert sorted(h1.names()) == sorted(h2.names()) == sorted([c1.name, c2.name])
    assert len(h1) == len(h2) == 2
    assert h1.find(c2.name).node == h2.node


@pytest_twisted.inlineCallbacks
def test_a_name_raced_by_two_hubs_goes_to_one(hubs):
    h1, h2 = (yield hubs()), (yield hubs())
    c1, c2 = joined(h1), joined(h2)
    results = yield defer.DeferredList([h1.rename(c1, "sam"), h2.rename(c2, "sam")],
                                       consumeErrors=True)
    oks = [ok for ok, _ in results]
    assert sorted(oks) == [False, True]
    failure = [value for ok, value in results if not ok][0]
    assert failure.check(ChatError) and failure.value.message == "name is taken: sam"
    assert [c.name for c in (c1, c2)].count("sam") == 1


@pytest_twisted.inlineCallbacks
def test_a_rename_answered_after_its_guest_name_was_lost_still_renames(hubs):
    # In a connection storm a node may hand out a guest number past its
    # reserved block that another node's user holds: its user becomes a
    # fresh guest while its own /nick is waiting for Redis.
    h1 = yield hubs()
    c1 = joined(h1)
    first = c1.name
    pending = h1.rename(c1, "sam")
    h1._lose_name(c1, first)
    assert c1.name != first
    yield pending
    assert c1.name == "sam" and h1.find("sam") is c1
    assert c1.lines[-1].endswith(" is now known as sam")
    assert grammar.name_key(first) not in h1.users


@pytest_twisted.inlineCallbacks
def test_private_to_nobody_anywhere(hubs):
    h1 = yield hubs()
    c1 = joined(h1)
    with pytest.raises(ChatError, match="no such user: ghost"):
        yield h1.private(c1, "ghost", "boo")


@pytest_twisted.inlineCallbacks
def test_link_down_drops_and_counts_and_chat_stays_local(hubs):
    hub = yield hubs(parse_redis_url(f"redis://127.0.0.1:{free_port()}/0"), wait=False)
    c1, c2 = joined(hub), joined(hub)
    for i in range(1000):
        hub.say(c1, f"line {i}")
    assert c2.lines[-1] == f"<{c1.name}> line 999"  # local chat goes on
    assert hub.link.dropped >= 1000  # nothing queued for Redis
    assert hub.link.pending == 0


@pytest_twisted.inlineCallbacks
def test_a_slow_redis_gets_at_most_max_pending(redis):
    up = defer.Deferred()
    link = RedisLink(parse_redis_url(redis.url), reactor, ["test"], lambda *a: None,
                     lambda: up.callback(None), lambda: None, max_pending=50)
    link.start()
    try:
        yield up
        redis.cli("CLIENT", "PAUSE", "500", "ALL")  # Redis stops answering
        accepted = [link.publish("test", f"m{i}") for i in range(49)]
        last = link.call("ping")
        accepted += [link.publish("test", f"m{i}") for i in range(49, 500)]
        assert sum(accepted) == 49 and link.pending == 50
        assert link.dropped == 451
        yield last  # answered once the pause ends: the queue drains
        assert link.pending == 0
    finally:
        yield link.stop()


@pytest_twisted.inlineCallbacks
def test_both_redis_connections_send_at_once_and_keep_alive(redis):
    up = defer.Deferred()
    link = RedisLink(parse_redis_url(redis.url), reactor, ["test"], lambda *a: None,
                     lambda: up.callback(None), lambda: None)
    link.start()
    try:
        yield up
        yield link.call("ping")  # (ClientService is done preparing both)
        for p in (link._commands, link._subscriber):
            handle = p.transport.getHandle()
            assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert handle.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        # A publish is on the socket before this reactor pass ends, not left
        # in Twisted's buffer for the next one.
        assert link.publish("test", "now")
        tcp = link._commands.transport._transport
        assert not tcp._tempDataBuffer and tcp.offset == len(tcp.dataBuffer)
        yield link.call("ping")
    finally:
        yield link.stop()


@pytest_twisted.inlineCallbacks
def test_a_dead_nodes_names_are_released_once(redis):
    up = defer.Deferred()
    link = RedisLink(parse_redis_url(redis.url), reactor, ["x"], lambda *a: None,
                     lambda: up.callback(None), lambda: None)
    link.start()
    bus_lines = redis.subscribe("chatd:0:room:lobby")
    try:
        yield up
        dead = ClusterNames(link, Keys(0), "dead0000dead0000")
        alive = ClusterNames(link, Keys(0), "a11ce000a11ce000")
        yield dead.heartbeat()
        assert (yield dead.claim("zoe", 1.0))
        assert not (yield alive.claim("ZOE", 2.0))  # held by the other node
        assert (yield alive.release_nodes("server lost")) == []  # its heartbeat lives
        redis.cli("DEL", "chatd:0:node:dead0000dead0000")  # as if it expired
        assert (yield alive.release_nodes("server lost")) == ["dead0000dead0000"]
        assert (yield alive.release_nodes("server lost")) == []
        assert bus.decode(bus_lines.message()) == bus.BusMessage(
            "dead0000dead0000", "left", {"name": "zoe", "reason": "server lost"})
        assert (yield alive.claim("zoe", 3.0))  # free again
    finally:
        bus_lines.close()
        yield link.stop()
