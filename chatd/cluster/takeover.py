"""
A login whose name is held on another node: that node is asked to let go
first (its session logged in to the account is closed, a guest holding the
name renamed), and the login goes on once its departure or rename is heard
(or after ``WAIT`` seconds, when the claim takes the name anyway).  So every
node sees what one node shows: ``*** NAME left (logged in elsewhere)``
before the new session takes the name.
"""

from twisted.internet import defer

from chatd import grammar
from chatd.cluster import bus

WAIT = 2.0  # seconds a login waits for the other node to let go


class TakeOver:
    """
    A mixin of ``ClusterHub``: ``make_way`` for logins, and ``_tell_shared``
    (a departure or rename heard) watching for the holder to let go.
    """

    def make_way(self, name):
        """
        ``None`` if ``name`` is not held on another node (or the link is
        down); else a ``Deferred`` that fires once its holder let go.
        """
        key = grammar.name_key(name)
        found = self.remote.find(name)
        if found is None or key in self.users or not self.link.up:
            return None
        node, _ = found
        waiting = self._making_way
        first = key not in waiting
        d = defer.Deferred()
        waiting.setdefault(key, []).append(d)
        if first:
            self.link.publish(self.keys.inbox(node), bus.encode(self.node, "taken", to=key))
            self.clock.callLater(WAIT, self._way_made, key)
        return d

    def _tell_shared(self, node, name, line, change, *args):
        super()._tell_shared(node, name, line, change, *args)
        if self.remote.find(name) is None:  # it left, or was renamed away
            self._way_made(grammar.name_key(name))

    def _way_made(self, key):
        for d in self._making_way.pop(key, []):
            d.callback(None)
