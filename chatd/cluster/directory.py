"""
This node's copy of who is on the other nodes: kept from the bus (joins,
departures, renames) and reloaded from Redis whenever a node (re-)registers.
"""

from chatd import grammar


class RemoteUsers:
    def __init__(self):
        self.nodes = {}  # node id -> {name key: name}, in arrival order

    def __len__(self):
        return sum(len(users) for users in self.nodes.values())

    def add(self, node, name):
        self.nodes.setdefault(node, {})[grammar.name_key(name)] = name

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

    def forget_node(self, node):
        self.nodes.pop(node, None)

    def clear(self):
        self.nodes.clear()

    def load(self, entries):
        """
        Replace everything with ``entries``: ``(node, name)`` pairs.
        """
        self.nodes = {}
        for node, name in entries:
            self.add(node, name)
