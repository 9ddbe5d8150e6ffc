"""
The rooms of the users on other nodes: ``RemoteMembers`` is the directory
(``RemoteUsers``) with, for each remote user, the rooms they are in, and
for each room its members elsewhere.  It is kept from the bus (``join``
puts a user in the lobby; ``enter``, ``part``, ``left`` and ``rename``) and
reloaded from the snapshot of every node's memberships (``presence``),
with the changes heard meanwhile replayed onto it like the names.
"""

from chatd import grammar
from chatd.cluster.directory import RemoteUsers
from chatd.grammar import LOBBY

LOBBY_ONLY = (LOBBY,)  # the rooms of most users: one tuple for them all


class RemoteMembers(RemoteUsers):
    """
    Kept compact, as it holds every user of every other node: a user in
    the lobby alone (nearly everyone) is only its name in ``nodes``.  Only
    the others have their room keys in ``joined``; only rooms other than
    the lobby have an index of members, and the lobby is counted as the
    users known less those not in it (``_away``).
    """

    def __init__(self):
        RemoteUsers.__init__(self)
        self.rooms = {}  # room key (not the lobby) -> {node: {name key: name}}, in arrival order
        self.spelled = {LOBBY: LOBBY}  # room key -> the room's name as first heard
        self.joined = {}  # node -> {name key: (room key, ...)}, but for the lobby alone
        self._away = 0  # users known and not in the lobby

    def _rooms(self, node, key):
        """
        The room keys of the user ``key`` on ``node``, ``None`` if not known.
        """
        if key not in self.nodes.get(node, ()):
            return None
        return self.joined.get(node, {}).get(key, LOBBY_ONLY)

    def _store(self, node, key, had, rooms):
        """
        The user ``key`` on ``node``, in ``had`` until now, is in ``rooms``
        (``None``: not known).
        """
        self._away += (rooms is not None and LOBBY not in rooms) - (
            had is not None and LOBBY not in had)
        if rooms is not None and rooms != LOBBY_ONLY:
            self.joined.setdefault(node, {})[key] = rooms
        elif key in self.joined.get(node, ()):
            users = self.joined[node]
            del users[key]
            if not users:
                del self.joined[node]

    # --- changes (each idempotent, so a replay onto a snapshot is safe) ----

    def add(self, node, name, rooms=LOBBY_ONLY):
        """
        ``name`` is online on ``node``, in ``rooms`` (connected: the lobby).
        """
        had = self._rooms(node, grammar.name_key(name))
        key = self._known(node, name)
        now = had if had is not None else ()
        for room in rooms:
            now = self._enter(node, key, now, room)
        self._store(node, key, had, now)

    def enter(self, node, name, room):
        had = self._rooms(node, grammar.name_key(name))
        key = self._known(node, name)
        self._store(node, key, had, self._enter(node, key, had or (), room))

    def _enter(self, node, key, rooms, room):
        """
        The room keys ``rooms`` of ``key`` (known) with ``room``'s, which
        is indexed (unless it is the lobby; ``_store`` keeps no lobby alone).
        """
        room_key = grammar.room_key(room)
        if room_key not in rooms:
            rooms += (room_key,)
        if room_key != LOBBY:
            self.rooms.setdefault(room_key, {}).setdefault(node, {})[key] = self.nodes[node][key]
            self.spelled.setdefault(room_key, room)
        return rooms

    def part(self, node, name, room):
        key, room_key = self._key(node, name), grammar.room_key(room)
        had = self._rooms(node, key)
        if had is not None:
            self._store(node, key, had, tuple(r for r in had if r != room_key))
        self._leave(room_key, node, key)

    def remove(self, node, name):
        key = grammar.name_key(name)
        had = self._rooms(node, key)
        known = RemoteUsers.remove(self, node, name)
        for room_key in had or ():
            self._leave(room_key, node, key)
        self._store(node, key, had, None)
        return known

    def rename(self, node, old, new):
        """
        ``old`` is ``new`` now, in the same rooms (an ``old`` not known:
        ``new`` keeps the rooms it has, e.g. from a newer snapshot).
        """
        before = grammar.name_key(old)
        had = self._rooms(node, before)
        known = RemoteUsers.remove(self, node, old)
        self._store(node, before, had, None)
        has = self._rooms(node, grammar.name_key(new))
        after = self._known(node, new)
        rooms = tuple(dict.fromkeys((had or ()) + (has or ())))
        self._store(node, after, has, rooms)
        for room_key in rooms:
            if room_key != LOBBY:
                members = self.rooms.setdefault(room_key, {}).setdefault(node, {})
                members.pop(before, None)
                members[after] = self.nodes[node][after]
        return known

    def _leave(self, room_key, node, key):
        nodes = self.rooms.get(room_key, {})
        members = nodes.get(node, {})
        members.pop(key, None)
        if not members:
            nodes.pop(node, None)
        if not nodes and room_key in self.rooms:
            del self.rooms[room_key], self.spelled[room_key]

    def forget_node(self, node):
        RemoteUsers.forget_node(self, node)
        for key, rooms in self.joined.pop(node, {}).items():
            self._away -= LOBBY not in rooms
            for room_key in rooms:
                self._leave(room_key, node, key)

    def clear(self):
        RemoteUsers.clear(self)
        self.rooms.clear()
        self.spelled.clear()
        self.spelled[LOBBY] = LOBBY
        self.joined.clear()
        self._away = 0

    def load(self, entries):
        """
        As ``RemoteUsers.load``, with ``(node, name, rooms)`` entries.
        """
        if entries is not None:
            self.clear()
        RemoteUsers.load(self, entries)

    # --- questions ----------------------------------------------------------

    def count(self, room_key):
        """
        How many are in the room elsewhere (the lobby's: counted, not found).
        """
        if room_key == LOBBY:
            return len(self) - self._away
        return sum(map(len, self.rooms.get(room_key, {}).values()))

    def members(self, room_key):
        """
        The names of the room's members elsewhere; the lobby's are found
        among everyone known, in the directory's order, spelled as now.
        """
        if room_key != LOBBY:
            return [name for members in self.rooms.get(room_key, {}).values()
                    for name in members.values()]
        names = []
        for node, users in self.nodes.items():
            rooms = self.joined.get(node)
            names += users.values() if rooms is None else [
                name for key, name in users.items() if LOBBY in rooms.get(key, LOBBY_ONLY)]
        return names

    def rooms_of(self, node, name):
        """
        The keys of the rooms ``name`` on ``node`` is in, or ``None`` if
        the user is not known.
        """
        rooms = self._rooms(node, grammar.name_key(name))
        return list(rooms) if rooms is not None else None

    def listed(self):
        """
        ``(room key, name, members elsewhere)`` of every room with members
        elsewhere.
        """
        lobby = [(LOBBY, LOBBY, count) for count in [self.count(LOBBY)] if count]
        return lobby + [(key, self.spelled[key], self.count(key)) for key in self.rooms]
