"""
Operators across nodes: an operator on one node kicks, mutes and unmutes
a user on another, and walls every node's users (bans: test_cluster_bans.py).
Real ``twistd`` nodes over a real ``redis-server``, loopback clients, the
operator made with ``chatd-admin --redis`` as a user makes one.
"""


from cluster_helpers import cluster_operator, lines_until, settle, synced
from daemon import free_port
from redis_server import wait_for
from test_metrics_loopback import scrape, value

CHEAP = ("--hash-memory", "8K")


def with_boss(redis, node, *placed):
    """
    ``boss``, an operator on ``node``, then one user per ``(node, name)``;
    all settled (every node lists every one of them).
    """
    clients = [cluster_operator(redis, node)]
    for where, name in placed:
        clients.append(where.client())
        clients[-1].nick(name)
    settle(clients)
    return clients


def test_a_kick_closes_a_user_on_another_node(redis, make_node):
    port = free_port()
    a, b = make_node(redis, *CHEAP), make_node(redis, *CHEAP, "--metrics-port", str(port))
    boss, bob, carol, dave = with_boss(redis, a, (b, "bob"), (a, "carol"), (b, "dave"))
    boss.say("/kick bob flooding")
    assert boss.expect("- kicked") == "- kicked bob"
    assert bob.expect("*** you were") == "*** you were kicked by boss: flooding"
    assert bob.closed()
    # Everyone who shared a room sees the departure once, on either node
    # (once each has heard what b published after it, no second one).
    for watcher in (dave, carol, boss):
        assert watcher.expect("*** bob") == "*** bob left (kicked by boss: flooding)"
    assert lines_until(dave, "- online") == []
    assert synced(dave, carol) == synced(dave, boss) == []
    assert value(scrape(port), "chatd_clients_dropped_total", reason="kicked") == 1
    wait_for(lambda: "bob disconnected (kicked by boss: flooding)" in b.log(), "b's log")
    assert "operator boss on node" in b.log()  # b says for whom it acted
    operator = a.log()
    assert "operator boss kicked bob" in operator and "Traceback" not in operator
    boss.say("/kick bob")  # gone now, from every node's directory
    assert boss.expect("! ") == "! no such user: bob"


def muted(boss, bob, command, length, line, refused):
    """
    ``boss`` mutes ``bob`` with ``command`` (for ``length``); ``bob`` is
    told, and ``line`` of his is refused: ``! you are REFUSED; ...``.
    """
    boss.say(command)
    assert boss.expect("- muted") == f"- muted bob {length}"
    assert bob.expect("*** you were muted") == \
        f"*** you were muted by boss {length}; you can still read"
    bob.say(line)
    assert bob.expect("! ") == f"! you are {refused}; you can still read"


def test_mute_and_unmute_of_a_user_on_another_node(redis, make_node):
    a, b = make_node(redis, *CHEAP), make_node(redis, *CHEAP)
    boss, bob = with_boss(redis, a, (b, "bob"))
    muted(boss, bob, "/mute bob 10m", "for 10m", "anyone?", "muted for 10m more")
    boss.say("hello bob")
    assert bob.expect("<boss>") == "<boss> hello bob"  # still reads

    boss.say("/unmute bob")
    assert boss.expect("- ") == "- asked bob's server to unmute bob"
    assert bob.expect("*** boss") == "*** boss unmuted you"
    bob.say("thanks")
    assert boss.expect("<bob>") == "<bob> thanks"
    boss.say("/unmute bob")  # not muted: only b knows, and does nothing
    assert boss.expect("- ") == "- asked bob's server to unmute bob"
    synced(boss, bob)
    wait_for(lambda: "bob was not muted" in b.log(), "b's log")

    muted(boss, bob, "/mute bob", "forever", "/me waves", "muted")
    for node in (a, b):
        assert "Traceback" not in node.log()


def test_a_wall_reaches_every_node_once(redis, make_node):
    a, b, c = (make_node(redis, *CHEAP) for _ in range(3))
    boss, carol, bob, dave, erin = with_boss(redis, a, (a, "carol"), (b, "bob"), (b, "dave"),
                                             (c, "erin"))
    boss.say("/wall maintenance at noon")
    wall = "*** notice from boss: maintenance at noon"
    assert boss.expect("*** notice") == wall
    for user in (carol, bob, dave, erin):
        assert user.expect("*** notice") == wall
    # Once each: a line boss's node publishes after the wall comes after it.
    for user in (bob, dave, erin, carol):
        assert synced(boss, user) == []
    assert lines_until(boss, "- online") == []
    assert "maintenance" not in a.log() + b.log() + c.log()  # never the text


def test_a_ban_by_name_holds_on_another_node(redis, make_node):
    a, b = make_node(redis, *CHEAP), make_node(redis, *CHEAP)
    boss, bob = with_boss(redis, a, (b, "bob"))
    boss.say("/ban bob 1h")
    assert boss.expect("- banned") == (
        "- banned bob for 1h; no account is called bob: only an address ban keeps a guest "
        "out")  # the count is this node's: bob was on b, and b closed him
    assert bob.expect("*** you were") == "*** you were banned by boss"
    for node in (a, b):
        assert "Traceback" not in node.log()
