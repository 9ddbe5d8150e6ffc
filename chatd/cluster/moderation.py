"""
Operators' actions across nodes: an operator's ``/kick``, ``/mute`` and
``/unmute`` of a user on another node go on that node's inbox (the node
the directory has the user on), which acts on its connection exactly as a
kick or mute there; a ``/wall`` is published once, and each node tells its
own users.  Bans stay each node's own.

A message names its user by name key; a node holding no user with that
key (gone, renamed away, or a forgery) does nothing but log it, so a kick
never reaches a user it was not meant for.  The operator is logged on the
node where the command was typed, the target's node logs what it did.
"""

from chatd import grammar
from chatd.cluster import bus
from chatd.grammar import ChatError
from chatd.hub import Hub
from chatd.moderation import ASKED, UNMUTED

LINK_DOWN = "the cluster link is down; try again in a moment"


class ClusterModeration:
    """
    A mixin of ``ClusterHub``: ``kick``, ``mute``, ``unmute`` and ``wall``
    as ``Hub`` has them (``find``'s ``RemoteUser`` is sent to its node),
    and the ``_on_KIND`` handlers ``Heard`` calls for those of other nodes.
    """

    def _here(self, target):
        return self.users.get(grammar.name_key(target.name)) is target

    def kick(self, target, by, reason=""):
        if self._here(target):
            return Hub.kick(self, target, by, reason)
        self._to_node(target, "kick", by=by, reason=reason)
        return target.name

    def mute(self, target, by, seconds):
        if self._here(target):
            return Hub.mute(self, target, by, seconds)
        self._to_node(target, "mute", by=by,
                      seconds="forever" if seconds is None else str(int(seconds)))

    def unmute(self, target, by):
        if self._here(target):
            return Hub.unmute(self, target, by)
        self._to_node(target, "unmute", by=by)
        return ASKED  # only that node knows whether the user was muted

    def wall(self, by, text):
        Hub.wall(self, by, text)
        self._publish("wall", by=by, text=text)

    def _to_node(self, target, kind, **fields):
        message = bus.encode(self.node, kind, to=grammar.name_key(target.name), **fields)
        if not self.link.publish(self.keys.inbox(target.node), message):
            raise ChatError(LINK_DOWN)

    # --- heard from another node's operator ---------------------------------

    def _held_here(self, node, kind, to, by):
        client = self.users.get(to)
        if client is None:
            self.log.info("{kind} by {operator} from node {sender} for {to}, who is not "
                          "on this node (gone or renamed): nothing done",
                          kind=kind, operator=by, sender=node, to=to)
            return None
        self.log.info("operator {operator} on node {sender}: {kind} {target}",
                      operator=by, sender=node, kind=kind, target=client.name, action=kind)
        return client

    def _on_kick(self, node, to, by, reason):
        client = self._held_here(node, "kick", to, by)
        if client is not None:
            Hub.kick(self, client, by, reason)

    def _on_mute(self, node, to, by, seconds):
        client = self._held_here(node, "mute", to, by)
        if client is not None:
            Hub.mute(self, client, by, None if seconds == "forever" else int(seconds))

    def _on_unmute(self, node, to, by):
        client = self._held_here(node, "unmute", to, by)
        if client is not None and Hub.unmute(self, client, by) != UNMUTED:
            self.log.info("{target} was not muted", target=client.name)

    def _on_wall(self, node, by, text):
        self.log.info("wall notice by {operator} from node {sender}", operator=by,
                      sender=node, action="wall")
        Hub.wall(self, by, text)
