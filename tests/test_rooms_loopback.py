"""
Rooms against a real ``twistd -n chatd`` on a loopback port: three users
across three rooms (who sees what, prefixes, switching the current room,
part and rejoin), topics, limits, bad names, and the history replayed on
join and after a restart.
"""

import re

from loopback import users

STAMP = r"= \[\d{4}-\d\d-\d\d \d\d:\d\d\] "


def join(client, room, online):
    """
    ``/join ROOM`` and read its answer up to "you are in"; returns the
    lines before it (the history) and the topic line after it, if any.
    """
    client.say(f"/join {room}")
    lines = []
    while True:
        line = client.line()
        if line.startswith("*** you are in #"):
            assert line.lower() == f"*** you are in #{room.lstrip('#')} ({online} online)".lower(), line
            return lines
        lines.append(line)


def unstamped(lines):
    """
    History lines without their time stamps (each must have one).
    """
    for line in lines:
        assert re.match(STAMP, line), line
    return [re.sub(STAMP, "", line) for line in lines]


def test_three_users_three_rooms(daemon):
    alice, bob, carol = users(daemon, "alice", "bob", "carol")
    assert join(alice, "#dev", 1) == []
    assert join(bob, "dev", 2) == []  # the "#" may be omitted
    assert alice.line() == "*** bob joined #dev"
    assert join(carol, "#Ops", 1) == []
    alice.say("hi dev")
    assert bob.line() == "<alice> hi dev"
    join(bob, "#LOBBY", 3)  # already in: just current again, nobody told
    alice.say("again")
    alice.say("/me waves")
    assert bob.line() == "[#dev] <alice> again"
    assert bob.line() == "[#dev] * alice waves"
    carol.say("ops only")
    bob.say("lobby line")
    assert alice.line() == "[#lobby] <bob> lobby line"
    assert carol.line() == "[#lobby] <bob> lobby line"
    carol.say("/who")
    assert carol.line() == "- online in #Ops (1): carol"
    carol.say("/who lobby")
    assert carol.line().startswith("- online (3): ")
    alice.say("/rooms")
    assert alice.line() == "- rooms (3): #lobby (3), #dev (2), #Ops (1)"
    for c in (alice, bob, carol):
        c.nothing(0.2)  # "ops only" reached nobody, no announcement leaked


def test_topic_part_rejoin_and_departure_once(daemon):
    alice, bob, carol = users(daemon, "alice", "bob", "carol")
    join(alice, "#dev", 1)
    join(carol, "#dev", 2)
    assert alice.line() == "*** carol joined #dev"
    alice.say("/topic shipping 1.0")  # not a room of hers: all of it is the text
    assert alice.line() == carol.line() == "*** alice set the topic of #dev: shipping 1.0"
    bob.say("/topic #dev")
    assert bob.line() == "- topic of #dev: shipping 1.0"
    bob.say("/topic #dev hijack")
    assert bob.line() == "! you are not in #dev (/join dev)"
    history = join(bob, "#dev", 3)
    assert unstamped(history[:-1]) == ["*** alice set the topic of #dev: shipping 1.0"]
    assert history[-1] == "- end of history of #dev"
    assert bob.line() == "- topic of #dev: shipping 1.0"
    assert alice.line() == carol.line() == "*** bob joined #dev"
    alice.say("/part dev lunch")
    assert alice.line() == "*** you left #dev"
    assert alice.line() == "*** you are in #lobby (3 online)"
    assert bob.line() == carol.line() == "*** alice left #dev (lunch)"
    alice.say("back in the lobby")
    assert bob.line() == carol.line() == "[#lobby] <alice> back in the lobby"
    assert join(alice, "dev", 3)[-1] == "- end of history of #dev"  # rejoin
    assert alice.line() == "- topic of #dev: shipping 1.0"
    assert bob.line() == carol.line() == "*** alice joined #dev"
    carol.say("/quit gone")  # carol shares two rooms with each: told once
    assert carol.line() == "*** bye"
    assert alice.line() == bob.line() == "*** carol left (gone)"
    alice.nothing(0.2)
    bob.nothing(0.2)


def test_part_every_room(daemon):
    alice, bob = users(daemon, "alice", "bob")
    join(alice, "#a", 1)
    alice.say("/part")
    assert alice.line() == "*** you left #a"
    assert alice.line() == "*** you are in #lobby (2 online)"
    alice.say("/part #lobby")
    assert alice.line() == "*** you left #lobby"
    assert alice.line() == "*** you are in no room (/join ROOM)"
    assert bob.line() == "*** alice left #lobby"
    alice.say("anyone?")
    assert alice.line() == "! you are in no room (/join ROOM)"
    alice.say("/me shrugs")
    assert alice.line() == "! you are in no room (/join ROOM)"
    alice.say("/who")
    assert alice.line() == "! you are in no room (/join ROOM)"
    alice.say("/part")
    assert alice.line() == "! you are in no room (/join ROOM)"
    alice.say("/msg bob still private")  # /msg does not need a room
    assert alice.line() == "[private to bob] still private"
    assert bob.line() == "[private] <alice> still private"
    bob.say("/rooms")  # #a was empty, without topic or history: forgotten
    assert bob.line() == "- rooms (1): #lobby (1)"
    join(alice, "lobby", 2)
    assert bob.line() == "*** alice joined #lobby"


def test_limits_and_bad_names(make_daemon):
    daemon = make_daemon("--max-rooms", "3", "--max-rooms-per-user", "2")
    alice, bob = users(daemon, "alice", "bob")
    join(alice, "#one", 1)
    alice.say("/join #two")
    assert alice.line() == "! you are in 2 rooms, the most allowed; /part one first"
    join(bob, "#two", 1)
    bob.say("/part #lobby")
    assert bob.line() == "*** you left #lobby"  # #two stays current
    assert alice.line() == "*** bob left #lobby"
    bob.say("/join #three")
    assert bob.line() == "! this server has 3 rooms, the most it keeps; join one of them (/rooms)"
    for bad in ("#", "#bad/name", "#" + "x" * 33, "#caf\u00e9", "##two"):
        alice.say(f"/join {bad}")
        assert alice.line().startswith(f"! bad room name: {bad} ")
    alice.say("/join #two #three")
    assert alice.line() == "! usage: /join ROOM"
    alice.say("/join")
    assert alice.line() == "! usage: /join ROOM"
    alice.say("/who #nowhere")
    assert alice.line() == "! no such room: #nowhere"
    alice.say("/part #two")
    assert alice.line() == "! you are not in #two (/join two)"
    alice.say("/history 501")
    assert alice.line() == "! /history shows 1 to 500 lines, not 501"


def test_history_replayed_on_join_and_after_restart(make_daemon, tmp_path):
    data = tmp_path / "data"
    first = make_daemon(data_dir=data)
    alice, bob = users(first, "alice", "bob")
    join(alice, "#dev", 1)
    for i in range(3):
        alice.say(f"dev {i}")
    alice.say("/part #lobby")
    alice.expect("*** you left #lobby")
    bob.expect("*** alice left #lobby")
    bob.say("lobby talk")
    history = join(bob, "#dev", 2)
    assert unstamped(history[:-1]) == ["<alice> dev 0", "<alice> dev 1", "<alice> dev 2"]
    bob.say("/history #dev 2")
    assert unstamped([bob.line(), bob.line()]) == ["<alice> dev 1", "<alice> dev 2"]
    assert bob.line() == "- end of history of #dev"
    first.stop()

    second = make_daemon(data_dir=data)
    carol = second.client()  # the lobby's history follows the greeting at once
    assert unstamped([carol.line()]) == ["<bob> lobby talk"]
    assert carol.line() == "- end of history of #lobby"
    carol.say("/who")  # the daemon's start-up probe may still be leaving
    carol.expect("- online (1): ")
    history = join(carol, "#DEV", 1)
    assert unstamped(history[:-1]) == ["<alice> dev 0", "<alice> dev 1", "<alice> dev 2"]


def test_no_history_gives_todays_lines(make_daemon):
    daemon = make_daemon("--history", "0")
    alice, bob = users(daemon, "alice", "bob")
    alice.say("hello")
    assert bob.line() == "<alice> hello"
    carol = daemon.client()
    assert alice.line() == f"*** {carol.name} joined"
    carol.nothing(0.3)
    carol.say("/history")
    assert carol.line() == "! history is off on this server"
    assert join(carol, "#dev", 1) == []
