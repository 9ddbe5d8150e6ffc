"""
Presence in every room, cluster-wide: ``ClusterRooms`` is the half of
``ClusterHub`` that counts and lists each room's members on every node
(``/who``, ``/rooms``, the ``(N online)`` of ``/join``, the presence
limit), keeps this node's memberships in Redis for the others, tells a
remote user's departure or rename in every room they share with this
node's users, and keeps topics cluster-wide.

A room a node has no members in exists there only as the directory's
count, unless it has a topic: then the node holds it as a ``Room`` (as one
node holds a room with a topic after everyone left), so entering it on any
node shows the topic.
"""

from chatd import grammar
from chatd.grammar import LOBBY, ChatError
from chatd.hub import Hub
from chatd.rooms import Room


class ClusterRooms:
    """
    A mixin of ``ClusterHub`` (before ``Hub``): needs its ``remote``
    (``RemoteMembers``), ``presence`` (``Presence``) and ``clock``.
    """

    _topic_loads = ()  # per load under way: room keys whose topic the bus told meanwhile

    # --- counting and listing ---------------------------------------------

    def _members_online(self, room):
        return len(room) + self.remote.count(room.key)

    def names(self, room=LOBBY):
        key = grammar.room_key(room)
        here = Hub.names(self, room) if key in self.rooms else []
        return here + self.remote.members(key)

    def _room(self, name):
        """
        As ``Hub._room``; a room with members only elsewhere is a passing
        ``Room`` with nobody here (not kept: nothing here to keep).
        """
        try:
            return Hub._room(self, name)
        except ChatError:
            key = grammar.room_key(grammar.check_room(name))
            if not self.remote.count(key):
                raise
            return Room(self.remote.spelled[key])

    def who(self, client, name=None):
        room, names = Hub.who(self, client, name)
        return room, names + self.remote.members(grammar.room_key(room))

    def list_rooms(self):
        """
        Every room with members anywhere (or a topic, or history here),
        counted on every node.
        """
        listed = [(name, count + self.remote.count(grammar.room_key(name)), topic)
                  for name, count, topic in Hub.list_rooms(self)]
        return listed + [(name, count, "") for key, name, count in self.remote.listed()
                         if key not in self.rooms]

    # --- this node's memberships, in Redis ---------------------------------

    def _place(self, client, old=None):
        """
        Write where ``client`` is now (``old``: the name it had) before the
        bus tells of it.
        """
        if old is not None and grammar.name_key(old) != grammar.name_key(client.name):
            self.presence.unplace(old)
        if self.users.get(grammar.name_key(client.name)) is client:
            self.presence.place(client.name, [room.name for room in client.rooms])

    def _place_everyone(self):
        return self.presence.replace(
            [(c.name, [room.name for room in c.rooms]) for c in self.users.values()])

    # --- what other nodes' users do ------------------------------------------

    def _tell_shared(self, node, name, line, change, *args):
        """
        Apply ``change`` to the directory, and tell ``line`` once to this
        node's members of every room ``name`` on ``node`` was in (the lobby
        if the directory did not know the user: a reload may have raced).
        """
        keys = self.remote.rooms_of(node, name)
        self.remote.change(change, node, name, *args)
        if keys is None:
            keys = [LOBBY]
        self._tell_rooms([self.rooms[key] for key in keys if key in self.rooms], line)

    # --- topics --------------------------------------------------------------

    def _share_topic(self, room, text):
        self.presence.set_topic(room, text, self.clock.seconds())

    def _take_topic(self, name, text):
        """
        A topic set elsewhere: kept on the room here (made for it if this
        node has space), so entering the room here shows it.
        """
        key = grammar.room_key(name)
        for heard in self._topic_loads:
            heard.add(key)
        room = self.rooms.get(key)
        if room is None:
            if len(self.rooms) >= self.max_rooms and not self._forget_idlest():
                return
            room = self.rooms[key] = Room(name, self.keep, self.fanouts)
        room.topic = text

    def _load_topics(self, give=False):
        """
        Take every topic kept in Redis (a topic the bus told meanwhile is
        newer, and stays); with ``give`` (this node registering), give
        Redis the topics of rooms it has none for (set while it was away,
        or it came back empty).
        """
        heard = set()
        self._topic_loads = [*self._topic_loads, heard]

        def loaded(topics):
            kept = set(heard)
            for name, text in topics:
                kept.add(grammar.room_key(name))
                if grammar.room_key(name) not in heard:
                    self._take_topic(name, text)
            for room in list(self.rooms.values()) if give else ():
                if room.topic and room.key not in kept:
                    self._share_topic(room.name, room.topic)
        d = self.presence.topics()
        d.addCallback(loaded)
        d.addErrback(lambda f: self.log.info("topics not loaded: {why}",
                                             why=f.getErrorMessage()))
        d.addBoth(lambda _: setattr(self, "_topic_loads",
                                    [h for h in self._topic_loads if h is not heard]))
        return d
