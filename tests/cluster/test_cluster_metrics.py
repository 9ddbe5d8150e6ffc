"""
A cluster node's metrics (issue 18, once the cluster exists), scraped from
a real node on a real Redis: the link's state, what was dropped while it
was down, and junk skipped on the bus.
"""

from cluster_helpers import users
from daemon import free_port
from redis_server import wait_for
from test_metrics_loopback import scrape, value

LOST = "*** cluster link lost: only this node's users get your lines until it is back"
RESTORED = "*** cluster link restored"
LOBBY = "chatd:0:room:lobby"


def test_link_state_drops_and_junk_are_counted(own_redis, make_node):
    port = free_port()
    node = make_node(own_redis, "--metrics-port", str(port))
    alice, amy = users((node, "alice"), (node, "amy"))
    m = scrape(port)
    assert value(m, "chatd_cluster_link_up") == 1
    # (the start-up probe's join and departure, said before the link was
    # up, may be counted already)
    dropped = value(m, "chatd_bus_dropped_total")
    assert value(m, "chatd_bus_skipped_total") == 0
    assert value(m, "chatd_history_writes_dropped_total") == 0

    assert own_redis.command("PUBLISH", LOBBY, b"not json") == b":1"
    wait_for(lambda: value(scrape(port), "chatd_bus_skipped_total") == 1,
             "the junk to be counted")

    own_redis.stop()
    assert alice.expect(LOST) == amy.expect(LOST) == LOST
    assert value(scrape(port), "chatd_cluster_link_up") == 0
    alice.say("only here")  # published to nobody: dropped, and not written
    assert amy.expect("<alice>") == "<alice> only here"
    down = scrape(port)
    assert value(down, "chatd_bus_dropped_total") == dropped + 1
    assert value(down, "chatd_history_writes_dropped_total") == 1

    own_redis.start()
    assert alice.expect(RESTORED, timeout=15) == RESTORED
    back = scrape(port)
    assert value(back, "chatd_cluster_link_up") == 1
    assert value(back, "chatd_bus_dropped_total") == value(down, "chatd_bus_dropped_total")
