"""
Rooms across nodes: a room's lines, joins, parts and topic reach its
members on every node, through each node's own fan-out (real ``twistd``
nodes, real ``redis-server``).
"""

from cluster_helpers import lines_until, synced, users


def test_a_rooms_lines_reach_its_members_on_every_node(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob, carol = users((a, "alice"), (b, "bob"), (b, "carol"))
    alice.say("/join #dev")
    assert alice.expect("*** you are in") == "*** you are in #dev (1 online)"
    synced(alice, bob)
    bob.say("/join dev")
    assert bob.expect("*** you are in") == "*** you are in #dev (2 online)"  # every node's
    assert alice.expect("*** bob") == "*** bob joined #dev"
    alice.say("hello dev")
    alice.say("/me waves")
    # (alice's own join may reach bob's node after bob's: then bob hears it)
    assert bob.expect("<alice>") == "<alice> hello dev"
    assert bob.line() == "* alice waves"
    bob.say("/join lobby")  # already in: the lobby is current again
    alice.say("later")
    assert bob.expect("[#dev]") == "[#dev] <alice> later"
    alice.say("/topic dev release on friday")
    # (a line that names its room has no prefix, as on one node)
    assert bob.expect("*** alice set") == "*** alice set the topic of #dev: release on friday"
    bob.say("/topic dev")
    assert bob.expect("- topic") == "- topic of #dev: release on friday"
    carol.say("lobby line")
    assert alice.expect("[#lobby]") == "[#lobby] <carol> lobby line"
    bob.say("/part dev bye")
    assert alice.expect("*** bob") == "*** bob left #dev (bye)"
    alice.say("nobody there now")
    # carol never joined #dev: none of its lines reached her; bob left it.
    assert not [line for line in lines_until(carol, "- online") if "dev" in line]
    assert not [line for line in lines_until(bob, "- online") if "nobody" in line]


def test_lines_of_a_room_nobody_here_is_in_go_nowhere_here(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob = users((a, "alice"), (b, "bob"))
    alice.say("/join secret")
    alice.say("in secret")
    alice.say("/join lobby")
    alice.say("in the lobby")
    assert bob.expect("<alice>") == "<alice> in the lobby"
    # (listed, as every room with members anywhere is: see test_cluster_presence)
    bob.say("/rooms")
    assert bob.expect("- rooms") == "- rooms (2): #lobby (2), #secret (1)"


def test_a_node_keeps_the_lines_its_members_heard_from_elsewhere(redis, make_node):
    a, b = make_node(redis), make_node(redis)
    alice, bob = users((a, "alice"), (b, "bob"))
    bob.say("/join dev")
    alice.say("/join dev")
    assert bob.expect("*** alice") == "*** alice joined #dev"
    alice.say("said on a")
    assert bob.expect("<alice>") == "<alice> said on a"
    dave = b.client()
    dave.say("/join dev")  # on b: b's history of #dev has alice's line
    kept = dave.expect(lambda l: l.startswith("= ") or l.startswith("- end of history of #dev"))
    assert kept.startswith("= [") and kept.endswith("] <alice> said on a"), kept
