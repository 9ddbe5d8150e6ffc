"""
The Redis account store and lock-out in this process, against the
session's real Redis (no fakes), with a ``task.Clock`` for the lock-out's
time: the same answers as the one-node ``LoginLimiter``, whichever node
asks.
"""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from chatd.accounts import AccountExists, LoginLimiter
from chatd.cluster.accounts import RedisAccountStore
from chatd.cluster.config import parse_redis_url
from chatd.cluster.hub import ClusterHub
from chatd.cluster.lockouts import RedisLoginLimiter
from chatd.grammar import ChatError


@pytest.fixture
def stores(redis):
    """
    ``start()``: a ``RedisAccountStore`` on its own node (a ``ClusterHub``)
    of the session's Redis, once the node is registered.
    """
    hubs = []

    @defer.inlineCallbacks
    def start():
        hub = ClusterHub(parse_redis_url(redis.url), reactor)
        store = RedisAccountStore()
        store.attach(hub)
        registered = hub.when_registered()
        hubs.append(hub)
        hub.start()
        yield registered
        return store

    yield start
    for hub in hubs:
        pytest_twisted.blockon(hub.stop())


@defer.inlineCallbacks
def outcome(limiter, name, address, failed=True, known=False):
    """
    One login attempt: the refusal's text, or "ok" (the attempt then ends,
    ``failed`` or not).
    """
    try:
        token = yield limiter.begin(name, address, known=known)
    except ChatError as e:
        return e.message
    yield limiter.end(token, failed)
    return "ok"


@pytest_twisted.inlineCallbacks
def test_lockouts_add_up_across_nodes_like_one_node(stores):
    clock = task.Clock()
    clock.advance(1000)
    s1, s2 = (yield stores()), (yield stores())
    nodes = [RedisLoginLimiter(s1, clock), RedisLoginLimiter(s2, clock)]
    alone = LoginLimiter(clock)
    # Failures alternating between the nodes, then a wait, a success from
    # another address, the window passing: the same answer at each step.
    script = [(0, "alice", "10.0.0.1"), (10, "alice", "10.0.0.2"),
              (10, "alice", "10.0.0.1"), (10, "alice", "10.0.0.3"),
              (5, "bob", "10.0.0.1"), (0.5, "carol", "10.0.0.1"),
              (20, "alice", "10.0.0.4"), (5, "alice", "10.0.0.4"),
              (60, "alice", "10.0.0.1")]
    seen = []
    for i, (wait, name, address) in enumerate(script):
        clock.advance(wait)
        cluster = yield outcome(nodes[i % 2], name, address)
        one = yield outcome(alone, name, address)
        seen.append(cluster)
        assert cluster == one, (i, cluster, one)
    assert seen[3] == "too many failed logins for alice; try again in 30 s"
    assert seen[5] == "too many failed logins from your address; try again in 25 s"
    assert seen[6] == "too many failed logins for alice; try again in 5 s"
    assert seen[7:] == ["ok", "ok"]
    assert nodes[0].lockouts_total + nodes[1].lockouts_total == alone.lockouts_total


@pytest_twisted.inlineCallbacks
def test_attempts_in_flight_on_other_nodes_count(stores):
    clock = task.Clock()
    clock.advance(50)
    s1, s2 = (yield stores()), (yield stores())
    a, b = RedisLoginLimiter(s1, clock), RedisLoginLimiter(s2, clock)
    held = []
    for limiter, address in ((a, "10.0.0.1"), (a, "10.0.0.2"), (b, "10.0.0.9")):
        held.append((yield limiter.begin("alice", address)))
    with pytest.raises(ChatError, match="too many logins in progress for alice; "
                                        "try again in a moment"):
        yield b.begin("alice", "10.0.0.8")
    # The owner's known address is not held by the name's lock.
    yield b.end((yield b.begin("alice", "10.0.0.8", known=True)), failed=False)
    for token in held:
        yield a.end(token, failed=False)
    yield b.end((yield b.begin("alice", "10.0.0.8")), failed=False)


@pytest_twisted.inlineCallbacks
def test_two_stores_racing_to_create_one_name_one_wins(stores):
    s1, s2 = (yield stores()), (yield stores())
    results = yield defer.DeferredList(
        [s1.create("winner", "$argon2id$one"), s2.create("Winner", "$argon2id$two")],
        consumeErrors=True)
    assert sorted(ok for ok, _ in results) == [False, True]
    assert [r for ok, r in results if not ok][0].check(AccountExists)
    # Both know it at once, from the answer each got.
    assert s1.registered("winner") and s2.registered("winner")
    assert (yield s2.get("winner"))[1] in ("$argon2id$one", "$argon2id$two")
    assert (yield s1.get("nobody")) is None


@pytest_twisted.inlineCallbacks
def test_a_node_joining_later_loads_the_accounts(stores):
    s1 = yield stores()
    yield s1.create("alice", "$argon2id$x")
    yield s1.remember("alice", "10.0.0.1")
    s2 = yield stores()
    assert s2.registered("alice") and not s2.registered("bob")
    assert (yield s2.known("alice", "10.0.0.1"))
    assert not (yield s2.known("alice", "10.0.0.2"))
    assert (yield s2.set_operator("alice", True)) == "alice"
    assert (yield s1.is_operator("alice"))
    assert (yield s1.set_operator("nobody", True)) is None
