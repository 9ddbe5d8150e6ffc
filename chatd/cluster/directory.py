"""
This node's copy of who is on the other nodes: kept from the bus (joins,
departures, renames) and reloaded from Redis whenever a node (re-)registers.

A reload's snapshot may be older than changes the bus brought while it was
on its way, so the changes heard meanwhile are replayed onto it (each is
idempotent).
"""

from chatd import grammar


class RemoteUsers:
    def __init__(self):
        self.nodes = {}  # node id -> {name key: name}, in arrival order
        self._reloads = 0  # snapshots asked for and not yet loaded
        self._heard = []  # changes heard since the oldest of them was asked for

    def __len__(self):
        return sum(len(users) for users in self.nodes.values())

    def add(self, node, name):
        self._known(node, name)

    def _known(self, node, name):
        """
        ``name`` is online on ``node`` (spelled so from now): its key, as
        ``_key``.  A name spelled as its key (most) is one string for both.
        """
        key = grammar.name_key(name)
        users = self.nodes.setdefault(node, {})
        if users.get(key) != name:
            users[key] = key if key == name else name
        stored = users[key]
        return stored if stored == key else key

    def _key(self, node, name):
        """
        ``name``'s key: the string stored as the name if it is spelled as
        its key (a map keyed by it then holds no second copy).
        """
        key = grammar.name_key(name)
        stored = self.nodes.get(node, {}).get(key)
        return stored if stored == key else key

    def remove(self, node, name):
        """
        Forget ``name`` on ``node``; whether it was known.
        """
        users = self.nodes.get(node, {})
        known = users.pop(grammar.name_key(name), None) is not None
        if not users:
            self.nodes.pop(node, None)
        return known

    def rename(self, node, old, new):
        known = self.remove(node, old)
        self.add(node, new)
        return known

    def find(self, name):
        """
        ``(node, name)`` of whoever has ``name`` on another node, or ``None``.
        """
        key = grammar.name_key(name)
        for node, users in self.nodes.items():
            if key in users:
                return node, users[key]
        return None

    def names(self):
        return [name for users in self.nodes.values() for name in users.values()]

    def change(self, what, node, *names):
        """
        ``add``, ``remove`` or ``rename`` as the bus tells it.
        """
        if self._reloads:
            self._heard.append((what, node, names))
        return getattr(self, what)(node, *names)

    def forget_node(self, node):
        self.nodes.pop(node, None)

    def clear(self):
        self.nodes.clear()

    def reloading(self):
        """
        A snapshot was asked for: keep what the bus says until it is loaded.
        """
        self._reloads += 1

    def load(self, entries):
        """
        Replace everything with ``entries`` (``(node, name, ...)``: the
        arguments of ``add``), then
        replay the changes heard since the snapshot was asked for; ``None``:
        the snapshot did not come.
        """
        self._reloads -= 1
        if entries is not None:
            self.nodes = {}
            for entry in entries:
                self.add(*entry)
            for what, node, names in self._heard:
                getattr(self, what)(node, *names)
        if not self._reloads:
            self._heard = []
