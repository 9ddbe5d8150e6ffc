"""
Nodes over one Redis are one chat: real ``twistd`` nodes, real
``redis-server``, loopback clients.
"""

import threading

from cluster_helpers import lines_until, settle, users, who
from daemon import Client, free_port


def test_lines_cross_nodes_in_the_senders_order(redis, make_node):
    a, b, c = (make_node(redis, "--rate", "0") for _ in range(3))
    alice, bob, carol = users((a, "alice"), (b, "bob"), (c, "carol"))
    for i in range(200):
        alice.say(f"line {i}")
    alice.say("/me is done")
    for reader in (bob, carol):
        got = [reader.expect("<alice> ").split(" ", 1)[1] for _ in range(200)]
        assert got == [f"line {i}" for i in range(200)]
        assert reader.line() == "* alice is done"
    assert lines_until(alice, "- online") == []  # never her own lines back


def test_who_joins_and_departures_are_cluster_wide(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob = users((a, "alice"), (b, "bob"))
    assert who(alice) == who(bob) == ["alice", "bob"]
    newcomer = b.client()
    assert alice.line() == f"*** {newcomer.name} joined"
    guest = newcomer.name
    newcomer.nick("carol")
    assert alice.line() == f"*** {guest} is now known as carol"
    settle([alice, bob, newcomer])
    bob.say("/quit gone fishing")
    assert alice.expect("*** bob left") == "*** bob left (gone fishing)"
    assert who(alice) == ["alice", "carol"]
    alice.say("/nick bob")  # the name is free again
    assert newcomer.expect(lambda l: "known as" in l) == "*** alice is now known as bob"


def test_a_name_raced_from_every_node_has_one_winner(redis, make_node):
    nodes = [make_node(redis) for _ in range(3)]
    clients = users(*[(nodes[i % 3], None) for i in range(24)])
    barrier = threading.Barrier(len(clients))
    outcomes = {}

    def race(c):
        barrier.wait()
        c.say("/nick winner")
        outcomes[c.name] = c.expect(lambda l: l == "! name is taken: winner"
                                    or l == f"*** {c.name} is now known as winner")

    threads = [threading.Thread(target=race, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [name for name, line in outcomes.items() if line.startswith("***")]
    assert len(winners) == 1, outcomes
    assert len(outcomes) == 24
    owner = redis.cli("HGET", "chatd:0:names", "winner")
    assert owner.endswith("|winner")
    for c in clients:
        c.name = "winner" if c.name == winners[0] else c.name
    settle(clients)


def test_guest_numbers_are_unique_across_nodes(redis, make_node):
    nodes = [make_node(redis) for _ in range(3)]
    clients = []
    lock = threading.Lock()

    def connect(node):
        for _ in range(15):
            c = node.client()
            with lock:
                clients.append(c)

    threads = [threading.Thread(target=connect, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = [c.name for c in clients]
    assert len(set(names)) == len(names) == 45, sorted(names)
    settle(clients)


def test_private_messages_reach_any_node(redis, make_node):
    a, b, c = (make_node(redis) for _ in range(3))
    alice, bob, carol = users((a, "alice"), (b, "bob"), (c, "carol"))
    alice.say("/msg BOB psst")
    assert alice.line() == "[private to bob] psst"
    assert bob.line() == "[private] <alice> psst"
    bob.say("/msg alice back")
    assert alice.line() == "[private] <bob> back"
    alice.say("/msg nobody hello?")
    assert alice.line() == "! no such user: nobody"
    assert lines_until(carol, "- online") == []


def test_a_clean_stop_announces_departures(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob, bert = users((a, "alice"), (b, "bob"), (b, "bert"))
    b.stop()
    departures = {alice.expect("*** "), alice.expect("*** ")}
    assert departures == {"*** bob left (server stopped)", "*** bert left (server stopped)"}
    assert who(alice) == ["alice"]
    assert redis.nodes() == {a.node_id}


def test_two_nodes_share_one_port_with_reuse_port(redis, make_node):
    port = free_port()
    a = make_node(redis, "--reuse-port", "--max-conns-per-ip", "0", port=port)
    b = make_node(redis, "--reuse-port", "--max-conns-per-ip", "0", port=port)
    clients = [Client(port) for _ in range(24)]
    settle(clients)  # one chat, whichever node each landed on
    holders = [value.split("|")[0] for value in redis.cli("HVALS", "chatd:0:names").split()]
    served = [holders.count(n.node_id) for n in (a, b)]
    assert sum(served) == 24 and min(served) > 0, served  # the kernel spread them


def test_lines_after_a_nick_wait_for_its_claim(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob = users((a, "alice"), (b, "bob"))
    bob.send("/nick robert\nhi\n/msg alice psst\nbye\n")  # one write
    assert [alice.line() for _ in range(4)] == [
        "*** bob is now known as robert", "<robert> hi",
        "[private] <robert> psst", "<robert> bye"]
    assert bob.line() == "*** bob is now known as robert"
    assert bob.line() == "[private to alice] psst"
