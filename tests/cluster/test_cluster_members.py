"""
``RemoteMembers`` in this process (no Redis, no reactor): the lobby kept
without an index of its own must count and list as if it had one, through
entering and parting, renames, departures, lost nodes and reloads, against
a naive model that keeps every user's rooms and derives the rest.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatd.cluster.members import RemoteMembers
from chatd.grammar import LOBBY

NODES = ["n1", "n2"]
NAMES = ["amy", "Amy", "bob", "BOB", "cy"]
ROOMS = ["lobby", "Lobby", "dev", "Dev", "ops"]
ROOM_KEYS = sorted({room.lower() for room in ROOMS} | {"nowhere"})


class Naive:
    """
    What ``RemoteMembers`` means, kept the obvious way: per node, each
    user's name and its rooms (room key -> the name it entered with; in
    the lobby it is always spelled as now).
    """

    def __init__(self):
        self.users = {}  # node -> {name key: (name, {room key: name})}
        self.spelled = {}

    def _set(self, node, name, rooms):
        self.users.setdefault(node, {})[name.lower()] = (name, rooms)

    def _rooms(self, node, name):
        user = self.users.get(node, {}).get(name.lower())
        return None if user is None else user[1]

    def add(self, node, name, rooms=(LOBBY,)):
        self._set(node, name, self._rooms(node, name) or {})
        for room in rooms:
            self.enter(node, name, room)

    def enter(self, node, name, room):
        if not self.count(room.lower()):  # spelled as first heard since it was empty
            self.spelled[room.lower()] = LOBBY if room.lower() == LOBBY else room
        rooms = self._rooms(node, name)
        self._set(node, name, {} if rooms is None else rooms)
        self._rooms(node, name)[room.lower()] = name

    def part(self, node, name, room):
        (self._rooms(node, name) or {}).pop(room.lower(), None)

    def remove(self, node, name):
        users = self.users.get(node, {})
        known = users.pop(name.lower(), None) is not None
        if not users:
            self.users.pop(node, None)
        return known

    def rename(self, node, old, new):
        rooms = list(self._rooms(node, old) or ())
        known = self.remove(node, old)
        self._set(node, new, dict.fromkeys(rooms + list(self._rooms(node, new) or ()), new))
        return known

    def forget_node(self, node):
        self.users.pop(node, None)

    def clear(self):
        self.users.clear()
        self.spelled.clear()

    def load(self, entries, heard):
        self.clear()
        for entry in entries:
            self.add(*entry)
        for what, node, names in heard:
            getattr(self, what)(node, *names)

    def _in(self, room_key):
        return [(name if room_key == LOBBY else rooms[room_key])
                for users in self.users.values() for name, rooms in users.values()
                if room_key in rooms]

    def __len__(self):
        return sum(map(len, self.users.values()))

    def names(self):
        return [name for users in self.users.values() for name, _ in users.values()]

    def find(self, name):
        return next(((node, users[name.lower()][0]) for node, users in self.users.items()
                     if name.lower() in users), None)

    def count(self, room_key):
        return len(self._in(room_key))

    def members(self, room_key):
        return self._in(room_key)

    def rooms_of(self, node, name):
        rooms = self._rooms(node, name)
        return None if rooms is None else list(rooms)

    def listed(self):
        return [(key, self.spelled[key], self.count(key))
                for key in ROOM_KEYS if self.count(key)]


def seen(directory):
    """
    All one can ask ``directory`` (the lobby's members in order: the
    directory's order of users; other rooms' as a set).
    """
    return (len(directory), directory.names(), [directory.find(n) for n in NAMES],
            [(key, directory.count(key), sorted(directory.members(key)))
             for key in ROOM_KEYS], directory.members(LOBBY),
            [directory.rooms_of(node, name) for node in NODES for name in NAMES],
            sorted(directory.listed()))


def spelled_as_listed(directory):
    return all(directory.spelled[key] == name for key, name, _ in directory.listed())


nodes, names, rooms = st.sampled_from(NODES), st.sampled_from(NAMES), st.sampled_from(ROOMS)
changes = st.one_of(
    st.tuples(st.just("add"), nodes, names),
    st.tuples(st.just("enter"), nodes, names, rooms),
    st.tuples(st.just("part"), nodes, names, rooms),
    st.tuples(st.just("remove"), nodes, names),
    st.tuples(st.just("rename"), nodes, names, names))
entries = st.lists(st.tuples(nodes, names, st.lists(rooms, max_size=3)), max_size=6)
steps = st.one_of(
    changes, changes, changes, st.tuples(st.just("forget_node"), nodes),
    st.just(("clear",)), st.just(("reloading",)), st.just(("reloading",)),
    st.tuples(st.just("load"), st.one_of(st.none(), entries, entries)))
FAST = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(entries, st.lists(steps, max_size=40))
def test_it_answers_as_the_naive_model(snapshot, steps):
    real, model = RemoteMembers(), Naive()
    for entry in snapshot:
        real.add(*entry)
        model.add(*entry)
    pending, heard = 0, []  # snapshots asked for; changes heard since the oldest
    for what, *args in steps:
        if what == "reloading":
            real.reloading()
            pending += 1
        elif what == "load":
            if not pending:
                continue
            real.load(args[0])
            if args[0] is not None:
                model.load(args[0], heard)
            pending -= 1
            heard = heard if pending else []
        elif what in ("forget_node", "clear"):
            getattr(real, what)(*args)
            getattr(model, what)(*args)
        else:
            node, *names = args
            assert real.change(what, node, *names) == getattr(model, what)(node, *names)
            heard += [(what, node, names)] if pending else []
        assert seen(real) == seen(model), (what, args)
        assert spelled_as_listed(real)


@FAST
@given(st.lists(changes, max_size=30))
def test_every_change_is_idempotent(changes):
    once, twice = RemoteMembers(), RemoteMembers()
    for what, node, *names in changes:
        once.change(what, node, *names)
        twice.change(what, node, *names)
        twice.change(what, node, *names)
        assert seen(once) == seen(twice)


def test_the_lobby_is_counted_without_an_index():
    members = RemoteMembers()
    for node, name in [("n1", "amy"), ("n1", "Bob"), ("n2", "cy")]:
        members.add(node, name)
    assert members.count(LOBBY) == 3 and members.listed() == [(LOBBY, LOBBY, 3)]
    members.enter("n1", "bob", "Dev")
    members.part("n1", "BOB", "lobby")
    members.part("n1", "BOB", "lobby")  # heard twice (a replay): parted once
    assert members.count(LOBBY) == 2 and members.members(LOBBY) == ["amy", "cy"]
    assert members.rooms_of("n1", "bob") == ["dev"] and members.members("dev") == ["bob"]
    members.add("n1", "Bob")  # a snapshot had them in the lobby again
    assert members.rooms_of("n1", "bob") == ["dev", "lobby"] and members.count(LOBBY) == 3
    members.add("n2", "dee", [])  # online, in no room
    assert members.count(LOBBY) == 3 and len(members) == 4 and members.rooms_of("n2", "dee") == []
    for node, name in [("n1", "amy"), ("n1", "bob"), ("n2", "cy")]:
        members.part(node, name, "lobby")
    assert members.count(LOBBY) == 0 and members.members(LOBBY) == []
    assert members.listed() == [("dev", "Dev", 1)] and members.spelled["dev"] == "Dev"
    members.enter("n2", "cy", "lobby")
    assert members.listed()[0] == (LOBBY, LOBBY, 1)


def test_a_rename_carries_the_rooms_and_merges_onto_a_known_name():
    members = RemoteMembers()
    members.add("n1", "amy", ["lobby", "dev"])
    members.add("n1", "bob", ["ops"])  # not in the lobby
    members.add("n2", "cy")
    assert members.rename("n1", "amy", "Amy")  # only the spelling changes
    assert members.members(LOBBY) == ["Amy", "cy"] and members.members("dev") == ["Amy"]
    assert members.rename("n1", "amy", "BOB")  # onto a name that had rooms: both kept
    assert members.rooms_of("n1", "bob") == ["lobby", "dev", "ops"]
    assert members.find("amy") is None and members.find("bob") == ("n1", "BOB")
    assert [members.count(key) for key in (LOBBY, "dev", "ops")] == [2, 1, 1]
    assert sorted(members.members(LOBBY)) == ["BOB", "cy"] and members.members("ops") == ["BOB"]
    assert not members.rename("n1", "zed", "dee")  # neither known: online, in no room
    assert members.rooms_of("n1", "dee") == [] and members.count(LOBBY) == 2
    assert not members.rename("n1", "zed", "cy")  # on another node: unchanged there
    assert members.rooms_of("n2", "cy") == ["lobby"] and members.rooms_of("n1", "cy") == []
    assert members.count(LOBBY) == 2 and len(members) == 4


def test_departures_and_lost_nodes_leave_every_room():
    members = RemoteMembers()
    members.add("n1", "amy", ["dev"])
    members.add("n1", "bob", ["lobby", "dev"])
    members.add("n2", "cy")
    members.add("n2", "dee", ["ops"])
    assert members.remove("n1", "AMY") and not members.remove("n1", "amy")
    assert members.count(LOBBY) == 2 and members.members("dev") == ["bob"]
    members.forget_node("n2")
    assert members.count(LOBBY) == 1 and members.listed() == [
        (LOBBY, LOBBY, 1), ("dev", "dev", 1)]
    members.forget_node("n1")
    assert members.count(LOBBY) == 0 and members.listed() == [] and len(members) == 0
    members.add("n2", "eve")  # nothing counted twice or left behind
    assert members.count(LOBBY) == 1 and members.joined == {} and members.rooms == {}


def test_a_reload_counts_the_lobby_after_the_changes_heard_meanwhile():
    members = RemoteMembers()
    members.add("n1", "amy")
    members.add("n1", "bob")
    members.reloading()
    members.change("part", "n1", "amy", "lobby")
    members.change("add", "n2", "cy")
    members.reloading()  # a second snapshot asked for before the first came
    members.change("remove", "n1", "bob")
    members.load([("n1", "amy", ["lobby"]), ("n1", "bob", ["lobby"])])  # older than all
    assert members.count(LOBBY) == 1 and members.members(LOBBY) == ["cy"]
    members.load([("n1", "amy", []), ("n2", "cy", ["lobby", "dev"])])  # newer
    assert members.count(LOBBY) == 1 and members.rooms_of("n1", "amy") == []
    assert members.listed() == [(LOBBY, LOBBY, 1), ("dev", "dev", 1)]
    members.clear()
    assert members.count(LOBBY) == 0 and members.listed() == [] and members.spelled == {
        LOBBY: LOBBY}


def test_a_user_in_the_lobby_alone_is_one_entry_and_one_string():
    members = RemoteMembers()
    members.add("n1", bytes(b"amy").decode())
    members.enter("n1", "amy", "lobby")
    members.add("n1", "Bob")
    assert members.joined == {} and members.rooms == {}
    (key, name), _ = members.nodes["n1"].items()
    assert name is key  # spelled as its key: one string
    members.enter("n1", "amy", "dev")
    assert next(iter(members.joined["n1"])) is key  # shared by the other maps too
