"""
The rooms of the users on other nodes: ``RemoteMembers`` is the directory
(``RemoteUsers``) with, for each remote user, the rooms they are in, and
for each room its members elsewhere.  It is kept from the bus (``join``
puts a user in the lobby; ``enter``, ``part``, ``left`` and ``rename``) and
reloaded from the snapshot of every node's memberships (``presence``),
with the changes heard meanwhile replayed onto it like the names.
"""

import sys

from chatd import grammar
from chatd.cluster.directory import RemoteUsers
from chatd.grammar import LOBBY

LOBBY_ONLY = (LOBBY,)  # the rooms of most users: one tuple for them all


class RemoteMembers(RemoteUsers):
    """
    Kept compact, as it holds every user of every other node: per node,
    each user's room keys as a tuple, and per room and node its members.
    """

    def __init__(self):
        RemoteUsers.__init__(self)
        self.rooms = {}  # room key -> {node: {name key: name}}, in arrival order
        self.spelled = {}  # room key -> the room's name as first heard
        self.joined = {}  # node -> {name key: (room key, ...)}

    # --- changes (each idempotent, so a replay onto a snapshot is safe) ----

    def _known(self, node, name):
        """
        ``name`` is online on ``node``: its key (one string for every map).
        """
        key = sys.intern(grammar.name_key(name))
        self.nodes.setdefault(node, {})[key] = name
        return key

    def add(self, node, name, rooms=LOBBY_ONLY):
        """
        ``name`` is online on ``node``, in ``rooms`` (connected: the lobby).
        """
        self.joined.setdefault(node, {}).setdefault(self._known(node, name), ())
        for room in rooms:
            self.enter(node, name, room)

    def enter(self, node, name, room):
        key, room_key = self._known(node, name), grammar.room_key(room)
        users = self.joined.setdefault(node, {})
        had = users.get(key, ())
        if room_key not in had:
            users[key] = LOBBY_ONLY if not had and room_key == LOBBY else had + (room_key,)
        self.rooms.setdefault(room_key, {}).setdefault(node, {})[key] = name
        self.spelled.setdefault(room_key, room)

    def part(self, node, name, room):
        key, room_key = grammar.name_key(name), grammar.room_key(room)
        users = self.joined.get(node, {})
        if key in users:
            users[key] = tuple(r for r in users[key] if r != room_key)
        self._leave(room_key, node, key)

    def remove(self, node, name):
        known = RemoteUsers.remove(self, node, name)
        key, users = grammar.name_key(name), self.joined.get(node, {})
        for room_key in users.pop(key, ()):
            self._leave(room_key, node, key)
        if not users:
            self.joined.pop(node, None)
        return known

    def rename(self, node, old, new):
        """
        ``old`` is ``new`` now, in the same rooms (an ``old`` not known:
        ``new`` keeps the rooms it has, e.g. from a newer snapshot).
        """
        before = grammar.name_key(old)
        known = RemoteUsers.remove(self, node, old)
        after = self._known(node, new)
        users = self.joined.setdefault(node, {})
        rooms = tuple(dict.fromkeys(users.pop(before, ()) + users.get(after, ())))
        users[after] = LOBBY_ONLY if rooms == LOBBY_ONLY else rooms
        for room_key in rooms:
            members = self.rooms.setdefault(room_key, {}).setdefault(node, {})
            members.pop(before, None)
            members[after] = new
        return known

    def _leave(self, room_key, node, key):
        nodes = self.rooms.get(room_key, {})
        members = nodes.get(node, {})
        members.pop(key, None)
        if not members:
            nodes.pop(node, None)
        if not nodes:
            self.rooms.pop(room_key, None)
            self.spelled.pop(room_key, None)

    def forget_node(self, node):
        RemoteUsers.forget_node(self, node)
        for key, rooms in self.joined.pop(node, {}).items():
            for room_key in rooms:
                self._leave(room_key, node, key)

    def clear(self):
        RemoteUsers.clear(self)
        self.rooms.clear()
        self.spelled.clear()
        self.joined.clear()

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
        How many are in the room elsewhere.
        """
        return sum(map(len, self.rooms.get(room_key, {}).values()))

    def members(self, room_key):
        return [name for members in self.rooms.get(room_key, {}).values()
                for name in members.values()]

    def rooms_of(self, node, name):
        """
        The keys of the rooms ``name`` on ``node`` is in, or ``None`` if
        the user is not known.
        """
        rooms = self.joined.get(node, {}).get(grammar.name_key(name))
        return list(rooms) if rooms is not None else None

    def listed(self):
        """
        ``(room key, name, members elsewhere)`` of every room with members
        elsewhere.
        """
        return [(key, self.spelled[key], self.count(key)) for key in self.rooms]
