"""
The transport-free hub: names, presence, fan-out and private messages,
seen through fake ``IChatClient``s.
"""

import pytest
from twisted.internet.task import Clock
from twisted.logger import Logger
from zope.interface import implementer
from zope.interface.verify import verifyObject

from chatd.grammar import ChatError
from chatd.hub import Hub, IChatClient


@implementer(IChatClient)
class FakeClient:
    name = None
    rooms = ()

    def __init__(self):
        self.data = b""

    def deliver(self, data):
        assert isinstance(data, bytes) and data.endswith(b"\r\n")
        self.data += data

    def lines(self):
        """
        The lines received since the last call.
        """
        data, self.data = self.data, b""
        return data.decode("utf-8").split("\r\n")[:-1]


@implementer(IChatClient)
class BrokenClient(FakeClient):
    def deliver(self, data):
        raise OSError("broken pipe")


@pytest.fixture
def hub():
    return Hub()


def join(hub, *clients):
    for c in clients:
        hub.connect(c)
    for c in clients:
        c.lines()
    return clients


def test_fake_client_provides_the_interface():
    assert verifyObject(IChatClient, FakeClient())


def test_connect_gives_guest_names_and_announces_to_others(hub):
    a, b, c = FakeClient(), FakeClient(), FakeClient()
    assert hub.connect(a) == "guest1" == a.name
    assert a.lines() == []
    assert hub.connect(b) == "guest2"
    assert hub.connect(c) == "guest3"
    assert a.lines() == ["*** guest2 joined", "*** guest3 joined"]
    assert b.lines() == ["*** guest3 joined"]
    assert c.lines() == []
    assert len(hub) == 3
    assert hub.names() == ["guest1", "guest2", "guest3"]


def test_guest_numbering_skips_taken_names(hub):
    squatter = FakeClient()
    squatter.name = "Guest2"
    hub.users["guest2"] = squatter
    a, b = FakeClient(), FakeClient()
    assert hub.connect(a) == "guest1"
    assert hub.connect(b) == "guest3"


def test_guest_numbers_are_not_reused(hub):
    a, b = FakeClient(), FakeClient()
    hub.connect(a)
    hub.disconnect(a)
    assert hub.connect(b) == "guest2"


def test_disconnect_announces_departure_once(hub):
    a, b, c = join(hub, FakeClient(), FakeClient(), FakeClient())
    hub.disconnect(c, "connection lost")
    assert a.lines() == b.lines() == ["*** guest3 left (connection lost)"]
    hub.disconnect(c, "connection lost")
    hub.disconnect(b)
    assert a.lines() == ["*** guest2 left"]
    assert c.lines() == []
    assert hub.names() == ["guest1"]
    with pytest.raises(ChatError, match="no such user: guest3"):
        hub.find("guest3")


def test_say_and_act_reach_everyone_but_the_sender(hub):
    a, b, c = join(hub, FakeClient(), FakeClient(), FakeClient())
    hub.say(a, "hello")
    hub.act(b, "waves")
    assert a.lines() == ["* guest2 waves"]
    assert b.lines() == ["<guest1> hello"]
    assert c.lines() == ["<guest1> hello", "* guest2 waves"]


def test_rename_is_seen_by_everyone(hub):
    a, b = join(hub, FakeClient(), FakeClient())
    hub.rename(a, "alice")
    assert a.name == "alice"
    assert a.lines() == b.lines() == ["*** guest1 is now known as alice"]
    assert hub.find("ALICE") is a
    with pytest.raises(ChatError, match="no such user: guest1"):
        hub.find("guest1")
    hub.say(a, "hi")
    assert b.lines() == ["<alice> hi"]


def test_names_are_unique_case_insensitively(hub):
    a, b = join(hub, FakeClient(), FakeClient())
    hub.rename(a, "alice")
    a.lines(), b.lines()
    for taken in ("alice", "Alice", "ALICE"):
        with pytest.raises(ChatError, match=f"name is taken: {taken}"):
            hub.rename(b, taken)
    assert b.name == "guest2"
    assert a.lines() == b.lines() == []


def test_rename_changes_case_of_own_name(hub):
    a, b = join(hub, FakeClient(), FakeClient())
    hub.rename(a, "alice")
    hub.rename(a, "Alice")
    assert hub.find("alice") is a and a.name == "Alice"
    with pytest.raises(ChatError, match="already called Alice"):
        hub.rename(a, "Alice")


def test_old_name_is_free_after_rename(hub):
    a, b = join(hub, FakeClient(), FakeClient())
    hub.rename(a, "alice")
    hub.rename(a, "alicia")
    hub.rename(b, "alice")
    assert hub.find("alice") is b and hub.find("alicia") is a
    assert sorted(hub.users) == ["alice", "alicia"]


@pytest.mark.parametrize("new, why", [
    ("guest7", "guest names are given by the server"),
    ("Guest9", "guest names are given by the server"),
    ("admin", "reserved"),
    ("a b", "may only use"),
    ("<x>", "may only use"),
    ("", "usage"),
    ("x" * 33, "longer than 32"),
])
def test_rename_refused(hub, new, why):
    a, b = join(hub, FakeClient(), FakeClient())
    with pytest.raises(ChatError, match=why):
        hub.rename(a, new)
    assert a.name == "guest1"
    assert a.lines() == b.lines() == []


def test_private_message_reaches_only_the_target(hub):
    a, b, c = join(hub, FakeClient(), FakeClient(), FakeClient())
    hub.rename(b, "bob")
    for x in (a, b, c):
        x.lines()
    assert hub.private(a, "BOB", "psst") == "bob"
    assert b.lines() == ["[private] <guest1> psst"]
    assert a.lines() == [] and c.lines() == []


def test_private_message_to_unknown_user(hub):
    a, b = join(hub, FakeClient(), FakeClient())
    with pytest.raises(ChatError) as e:
        hub.private(a, "zed", "psst")
    assert e.value.message == "no such user: zed"
    assert a.lines() == b.lines() == []


def test_failing_recipient_does_not_break_a_broadcast(hub):
    events = []
    hub.lobby.log = Logger(namespace="test", observer=events.append)
    a, broken, c = FakeClient(), BrokenClient(), FakeClient()
    join(hub, a, broken, c)
    a.lines(), c.lines()
    hub.say(a, "still delivered")
    assert c.lines() == ["<guest1> still delivered"]
    hub.rename(c, "carol")
    assert a.lines() == ["*** guest3 is now known as carol"]
    failures = [e for e in events if "log_failure" in e]
    assert len(failures) == 3  # the join of guest3, the chat line, the rename
    assert failures[0]["recipient"] == "guest2"
    assert failures[0]["room"] == "lobby"
    assert failures[0]["log_failure"].check(OSError)


def test_presence_limit_silences_joins_in_a_big_room():
    hub = Hub(presence_limit=2)
    a, b, c = FakeClient(), FakeClient(), FakeClient()
    hub.connect(a)
    hub.connect(b)
    hub.connect(c)
    assert a.lines() == ["*** guest2 joined"]
    hub.disconnect(c)
    assert a.lines() == ["*** guest3 left"]


def test_presence_limit_tells_a_rename_only_to_the_renamer_in_a_big_room():
    hub = Hub(presence_limit=2)
    a, b, c = FakeClient(), FakeClient(), FakeClient()
    for client in (a, b, c):
        hub.connect(client)
    a.lines(), b.lines(), c.lines()
    hub.rename(c, "carol")
    assert c.lines() == ["*** guest3 is now known as carol"]
    assert a.lines() == [] and b.lines() == []
    hub.disconnect(b)
    hub.rename(c, "caroline")
    assert a.lines() == ["*** guest2 left", "*** carol is now known as caroline"]


def test_notify_excludes(hub):
    a, b = join(hub, FakeClient(), FakeClient())
    hub.notify("alice shared a.txt (5 bytes)", exclude=a)
    assert a.lines() == []
    assert b.lines() == ["*** alice shared a.txt (5 bytes)"]


# --- rooms -------------------------------------------------------------------


def test_rooms_prefix_lines_from_other_rooms(hub):
    a, b, c = join(hub, FakeClient(), FakeClient(), FakeClient())
    hub.join(a, "#dev")
    assert a.lines() == ["*** you are in #dev (1 online)"]
    hub.join(b, "DEV")
    assert a.lines() == ["*** guest2 joined #dev"]
    assert b.lines() == ["*** you are in #dev (2 online)"]
    hub.join(b, "#lobby")  # already in: becomes current, nobody told
    assert b.lines() == ["*** you are in #lobby (3 online)"]
    assert a.lines() == c.lines() == []
    hub.say(a, "hi")
    hub.act(a, "waves")
    assert b.lines() == ["[#dev] <guest1> hi", "[#dev] * guest1 waves"]
    assert c.lines() == []
    hub.say(c, "lobby")
    assert a.lines() == ["[#lobby] <guest3> lobby"]
    assert b.lines() == ["<guest3> lobby"]
    assert hub.current(a) == "dev" and [r.name for r in a.rooms] == ["lobby", "dev"]


def test_part_makes_the_most_recent_room_current(hub):
    a, b = join(hub, FakeClient(), FakeClient())
    for room in ("#one", "#two", "#one"):
        hub.join(a, room)
    a.lines()
    hub.part(a, None, "bye")
    assert a.lines() == ["*** you left #one", "*** you are in #two (1 online)"]
    hub.part(a, "lobby")
    assert a.lines() == ["*** you left #lobby"]
    assert b.lines() == ["*** guest1 left #lobby"]
    hub.part(a)
    assert a.lines() == ["*** you left #two", "*** you are in no room (/join ROOM)"]
    with pytest.raises(ChatError, match=r"^you are in no room \(/join ROOM\)$"):
        hub.say(a, "hello?")
    assert [name for name, _, _ in hub.list_rooms()] == ["lobby"]  # the empty ones forgotten


def test_disconnect_is_told_once_to_everyone_sharing_a_room(hub):
    a, b, c = join(hub, FakeClient(), FakeClient(), FakeClient())
    for client in (a, b):
        hub.join(client, "#x")
        hub.join(client, "#y")
    hub.part(c, "#lobby")
    for client in (a, b, c):
        client.lines()
    hub.disconnect(a, "gone")
    assert b.lines() == ["*** guest1 left (gone)"]
    assert c.lines() == []


def test_presence_limit_is_per_room():
    hub = Hub(presence_limit=2)
    a, b, c = join(hub, FakeClient(), FakeClient(), FakeClient())
    hub.join(a, "#small")
    hub.join(b, "#small")
    assert a.lines()[-1] == "*** guest2 joined #small"  # 2 in #small
    assert b.lines() == ["*** you are in #small (2 online)"]
    hub.rename(c, "carol")  # the lobby (3) is past the limit: only carol told
    assert c.lines() == ["*** guest3 is now known as carol"]
    assert a.lines() == b.lines() == []
    hub.rename(b, "bob")  # #small is within it: a hears there
    assert a.lines() == ["*** guest2 is now known as bob"]


def test_history_ring_replayed_on_join_and_capped():
    clock = Clock()
    hub = Hub(clock=clock, history=2)
    a, b = join(hub, FakeClient(), FakeClient())
    hub.join(a, "#dev")
    for i in range(3):
        clock.advance(60)
        hub.say(a, f"line {i}")
    hub.topic(a, None, "news")
    hub.notify("a shared f (1 byte)", room="dev", exclude=a)
    a.lines()
    hub.join(b, "#dev")
    assert b.lines() == [
        "= [1970-01-01 00:03] *** guest1 set the topic of #dev: news",
        "= [1970-01-01 00:03] *** a shared f (1 byte)",
        "- end of history of #dev",
        "*** you are in #dev (2 online)",
        "- topic of #dev: news",
    ]
    hub.part(a, "#dev")
    hub.part(b, "#dev")
    assert "dev" in hub.rooms  # kept: it has a topic and history


def test_private_messages_are_never_kept():
    hub = Hub(history=10)
    a, b = join(hub, FakeClient(), FakeClient())
    hub.private(a, "guest2", "secret")
    assert not hub.lobby.history


def test_room_limits():
    hub = Hub(max_rooms=2, max_rooms_per_user=2)
    a, b = join(hub, FakeClient(), FakeClient())
    hub.join(a, "#one")
    with pytest.raises(ChatError, match="the most allowed"):
        hub.join(a, "#two")
    with pytest.raises(ChatError, match="this server has 2 rooms"):
        hub.join(b, "#two")
    hub.join(b, "#ONE")
    assert b.lines()[-1] == "*** you are in #one (2 online)"


def test_at_the_room_limit_the_idlest_empty_room_makes_space():
    clock = Clock()
    hub = Hub(clock=clock, history=5, max_rooms=3)
    a, b = join(hub, FakeClient(), FakeClient())
    for name in ("#old", "#newer"):
        clock.advance(10)
        hub.join(a, name)
        hub.say(a, "kept")  # history keeps the room when it empties
        hub.part(a)
    hub.join(a, "#fresh")
    assert sorted(hub.rooms) == ["fresh", "lobby", "newer"]  # #old went
    hub.join(b, "#another")
    assert sorted(hub.rooms) == ["another", "fresh", "lobby"]
    with pytest.raises(ChatError, match="this server has 3 rooms"):
        hub.join(b, "#third")  # every room has a member: nothing to forget
