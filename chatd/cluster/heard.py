"""
What the other nodes publish, as this node acts on it: ``Heard`` is the
half of ``ClusterHub`` that reads the bus (every message checked by
``bus.decode`` first; our own skipped, delivered when they were sent).
The operators' kinds (kick, mute, unmute, wall) are handled in
``moderation``; bans made and lifted (ban, unban) by the ``bans`` store.
"""

from chatd import grammar
from chatd.cluster import bus


class Heard:
    """
    A mixin of ``ClusterHub``: ``_received`` is the link's subscriber
    callback, and each ``_on_KIND`` handles one kind of ``bus`` message.
    """

    def _received(self, channel, raw):
        try:
            message = bus.decode(raw)
        except bus.Malformed as e:
            self.skipped += 1
            self.log.warn("skipped a malformed message on {channel}: {why}",
                          channel=channel, why=str(e))
            return
        if message.node == self.node:
            return  # our own: delivered here when it was sent
        try:
            getattr(self, "_on_" + message.kind)(message.node, **message.fields)
        except Exception:
            self.log.failure("bus message {kind} from node {sender} failed",
                             kind=message.kind, sender=message.node)

    # A line in a room reaches this node's members of it, through the
    # local fan-out, so the "[#room]" prefix and the current room stay this
    # node's business; a kept line (not a join or part) goes into the
    # room's ring here, even with nobody here in it (``HistoryRings``).
    def _in_room(self, name, line, prefixed=True, presence=False):
        room = self.rooms.get(grammar.room_key(name))
        if room is None and not presence:
            room = self._room_for_history(name)
        if room is None or (presence and not (len(room) and self._announce_presence(room))):
            return None
        text = line(room.name)
        if len(room):
            room.broadcast(text, prefixed=prefixed)
        if not presence:
            self._keep_heard(room, text)
        return room

    def _on_say(self, node, room, name, text):
        self._in_room(room, lambda _: grammar.chat(name, text))

    def _on_act(self, node, room, name, text):
        self._in_room(room, lambda _: grammar.action(name, text))

    def _on_enter(self, node, room, name):
        self.remote.change("enter", node, name, room)
        self._in_room(room, lambda r: grammar.room_joined(name, r), False, True)

    def _on_part(self, node, room, name, reason):
        self.remote.change("part", node, name, room)
        self._in_room(room, lambda r: grammar.room_left(name, r, reason), False, True)

    def _on_topic(self, node, room, name, text):
        self._in_room(room, lambda r: grammar.topic_set(name, r, text), False)
        self._take_topic(room, text)  # kept in the store by the node it was set on

    # Connections are told in the lobby, departures and renames in every
    # room the user shares with this node's users (``_tell_shared``), even
    # if the directory did not know the user (a reload may have raced it):
    # each is published exactly once, and told once to each member here.
    def _on_join(self, node, name):
        self._tell_shared(node, name, grammar.joined(name), "add")

    def _on_left(self, node, name, reason):
        self._tell_shared(node, name, grammar.left(name, reason), "remove")

    def _on_rename(self, node, old, new):
        self._tell_shared(node, old, grammar.renamed(old, new), "rename", new)

    def _on_private(self, node, to, name, text):
        client = self.users.get(to)
        if client is not None:
            self._deliver_to(client, grammar.private_from(name, text))

    def _on_sync(self, node):
        self._load_topics()  # it may have given Redis topics set while away
        self._reload().addErrback(lambda f: None)

    def _on_account(self, node, name):
        if self.accounts is not None:
            self.accounts.heard(name)

    def _on_ban(self, node, target, until, reason, by):
        if self.bans is not None:
            self.bans.heard_ban(node, target, until, reason, by)

    def _on_unban(self, node, target, by):
        if self.bans is not None:
            self.bans.heard_unban(node, target, by)

    def _on_taken(self, node, to):
        client = self.users.get(to)
        if client is not None:
            self._lose_name(client, client.name)
