"""
Bans across nodes: with ``--redis`` a ban made on one node holds on every
node (covered users there are closed, new connections from a banned
address and logins to a banned account refused), ``/bans`` and ``/unban``
are the cluster's, a node started later loads them, and they outlive every
node (they are in Redis).  Real ``twistd`` nodes over a real
``redis-server``, loopback clients from several loopback addresses, the
operators made with ``chatd-admin --redis``.
"""


from cluster_helpers import cluster_operator, no_traceback, refused, settle
from loopback import register
from redis_server import wait_for

CHEAP = ("--hash-memory", "8K")



def login(client, name, password="secret1"):
    client.say(f"/login {name} {password}")
    return client.expect(lambda line: line.startswith(("*** logged in", "! ")))




def test_a_ban_on_one_node_holds_on_every_node(redis, make_node):
    a, b = make_node(redis, *CHEAP), make_node(redis, *CHEAP)
    boss, chief = cluster_operator(redis, a, "boss"), cluster_operator(redis, b, "chief")
    mallory = b.client()
    register(mallory, "mallory")
    other, watcher = b.client(source="127.0.0.2"), b.client()
    settle([boss, chief, mallory, other, watcher])

    boss.say("/ban mallory 2h spamming links")
    assert boss.expect("- banned") == "- banned mallory for 2h"  # none on a
    assert mallory.expect("*** you were") == "*** you were banned by boss: spamming links"
    assert mallory.closed()
    assert watcher.expect("*** mallory left") == \
        "*** mallory left (banned by boss: spamming links)"
    boss.say("/ban 127.0.0.2 2d")
    assert boss.expect("- banned") == "- banned 127.0.0.2 for 2d"
    assert other.expect("*** you were") == "*** you were banned by boss"
    assert other.closed()
    # b holds both now: a new connection from the address, and a login to
    # the account, are refused there with the ban's one line.
    assert refused(b, "127.0.0.2") == "! banned from this server for 2d"
    again = b.client()
    assert login(again, "mallory") == "! banned from this server (spamming links) for 2h"
    assert again.closed()
    chief.say("/bans")
    assert chief.expect("- bans") == "- bans (2):"
    assert chief.line() == "- mallory (account) by boss, 2h left: spamming links"
    assert chief.line() == "- 127.0.0.2 (address) by boss, 2d left"
    wait_for(lambda: "mallory disconnected (banned by boss: spamming links)" in b.log(),
             "b's log")
    assert "operator boss on node" in b.log()  # b says for whom it acted

    chief.say("/unban mallory")
    assert chief.expect("- unbanned") == "- unbanned mallory"
    chief.say("/unban 127.0.0.2")
    assert chief.expect("- unbanned") == "- unbanned 127.0.0.2"
    chief.say("/unban mallory")
    assert chief.expect("! ") == "! no ban on mallory"
    wait_for(lambda: a.log().count("operator chief on node") == 3, "a to hear the unbans")
    assert login(a.client(), "mallory") == "*** logged in as mallory"
    a.client(source="127.0.0.2")  # greeted
    boss.say("/bans")
    assert boss.expect("- bans") == "- bans (0)"
    no_traceback(a, b)


def test_a_ban_by_name_closes_a_guest_going_by_it_on_another_node(redis, make_node):
    a, b = make_node(redis, *CHEAP), make_node(redis, *CHEAP)
    boss = cluster_operator(redis, a, "boss")
    bob, carol = b.client(), a.client()
    bob.nick("bob")
    settle([boss, bob, carol])
    boss.say("/ban bob 1h")
    assert boss.expect("- banned") == \
        "- banned bob for 1h; no account is called bob: only an address ban keeps a guest out"
    assert bob.expect("*** you were") == "*** you were banned by boss"
    assert bob.closed()
    assert carol.expect("*** bob left") == "*** bob left (banned by boss)"
    no_traceback(a, b)


def test_a_node_started_later_loads_the_bans_and_they_outlive_every_node(redis, make_node):
    a = make_node(redis, *CHEAP)
    boss = cluster_operator(redis, a, "boss")
    mallory = a.client()
    register(mallory, "mallory")
    boss.say("/ban mallory")
    assert boss.expect("- banned") == "- banned mallory forever; 1 disconnected"
    boss.say("/ban 127.0.0.3/32 2h spam")
    assert boss.expect("- banned") == "- banned 127.0.0.3 for 2h"

    c = make_node(redis, *CHEAP)
    c.wait_log("2 bans loaded from redis")
    assert refused(c, "127.0.0.3") == "! banned from this server (spam) for 2h"
    assert login(c.client(), "mallory") == "! banned from this server"
    a.stop()
    c.stop()

    # Every node gone, one started again on a's data directory: the bans
    # are Redis's, not a node's.
    d = make_node(redis, *CHEAP, data_dir=a.data_dir)
    d.wait_log("2 bans loaded from redis")
    assert refused(d, "127.0.0.3") == "! banned from this server (spam) for 2h"
    assert login(d.client(), "mallory") == "! banned from this server"
    boss = d.client()
    assert login(boss, "boss") == "*** logged in as boss"
    boss.say("/bans")
    assert boss.expect("- bans") == "- bans (2):"
    no_traceback(d)


def test_a_ban_made_while_a_node_was_cut_off_holds_there_once_it_is_back(redis, make_node):
    a = make_node(redis, *CHEAP)
    user = a.client(source="127.0.0.7")
    watcher = a.client()
    a.wait_log("0 bans loaded from redis")
    # Written as a node writes it, but with no message: a missed it.
    record = '{"until":"forever","reason":"while away","by":"Boss"}'
    assert redis.command("HSET", "chatd:0:bans", "127.0.0.7", record) == b":1"
    redis.cli("CLIENT", "KILL", "TYPE", "pubsub")  # a's link drops and comes back
    assert user.expect("*** you were") == "*** you were banned by Boss: while away"
    assert user.closed()
    assert refused(a, "127.0.0.7") == "! banned from this server (while away)"
    assert watcher.expect(f"*** {user.name} left") == \
        f"*** {user.name} left (banned by Boss: while away)"
    no_traceback(a)
