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


class RemoteMembers(RemoteUsers):
    def __init__(self):
        RemoteUsers.__init__(self)
        self.rooms = {}  # room key -> {(node, name key): name}, in arrival order
        self.spelled = {}  # room key -> the room's name as first heard
        self.joined = {}  # (node, name key) -> {room key: None}

    # --- changes (each idempotent, so a replay onto a snapshot is safe) ----

    def add(self, node, name, rooms=(LOBBY,)):
        """
        ``name`` is online on ``node``, in ``rooms`` (connected: the lobby).
        """
        RemoteUsers.add(self, node, name)
        self.joined.setdefault((node, grammar.name_key(name)), {})
        for room in rooms:
            self.enter(node, name, room)

    def enter(self, node, name, room):
        RemoteUsers.add(self, node, name)
        who, key = (node, grammar.name_key(name)), grammar.room_key(room)
        self.joined.setdefault(who, {})[key] = None
        self.rooms.setdefault(key, {})[who] = name
        self.spelled.setdefault(key, room)

    def part(self, node, name, room):
        who, key = (node, grammar.name_key(name)), grammar.room_key(room)
        self.joined.get(who, {}).pop(key, None)
        self._leave(key, who)

    def remove(self, node, name):
        known = RemoteUsers.remove(self, node, name)
        who = (node, grammar.name_key(name))
        for key in self.joined.pop(who, ()):
            self._leave(key, who)
        return known

    def rename(self, node, old, new):
        """
        ``old`` is ``new`` now, in the same rooms (an ``old`` not known:
        ``new`` keeps the rooms it has, e.g. from a newer snapshot).
        """
        before, after = (node, grammar.name_key(old)), (node, grammar.name_key(new))
        known = RemoteUsers.remove(self, node, old)
        RemoteUsers.add(self, node, new)
        rooms = self.joined.pop(before, {})
        rooms.update(self.joined.get(after, {}))
        self.joined[after] = rooms
        for key in rooms:
            members = self.rooms.setdefault(key, {})
            members.pop(before, None)
            members[after] = new
        return known

    def _leave(self, key, who):
        members = self.rooms.get(key, {})
        members.pop(who, None)
        if not members:
            self.rooms.pop(key, None)
            self.spelled.pop(key, None)

    def forget_node(self, node):
        RemoteUsers.forget_node(self, node)
        for who in [who for who in self.joined if who[0] == node]:
            self.remove(*who)

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
        return len(self.rooms.get(room_key, ()))

    def members(self, room_key):
        return list(self.rooms.get(room_key, {}).values())

    def rooms_of(self, node, name):
        """
        The keys of the rooms ``name`` on ``node`` is in, or ``None`` if
        the user is not known.
        """
        rooms = self.joined.get((node, grammar.name_key(name)))
        return list(rooms) if rooms is not None else None

    def listed(self):
        """
        ``(room key, name, members elsewhere)`` of every room with members
        elsewhere.
        """
        return [(key, self.spelled[key], len(members)) for key, members in self.rooms.items()]
