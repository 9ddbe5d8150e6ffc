"""
Users, names, presence and rooms, free of transports.

The hub knows clients only through ``IChatClient``: a name, the rooms it
is in and a way to take encoded lines.  Each broadcast is formatted and
encoded once, then handed to every member; one failing recipient is logged
and never breaks the rest.  Its public methods (connect, disconnect,
rename, say, act, notify, private, join, part, rooms, who, topic, history;
the operators' kick, mute, unmute and wall, from
``chatd.moderation.OperatorActions``) are the seam where the Redis-backed
``chatd.cluster.hub.ClusterHub`` stands in (overriding
``_next_guest_number`` and ``_apply_rename`` too); a room itself is
``chatd.rooms.Room``, its kept lines go to an ``IHistoryStore``.
"""

import itertools

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.runtime import seconds
from zope.interface import Attribute, Interface

from chatd import grammar
from chatd.grammar import LOBBY, ChatError
from chatd.moderation import OperatorActions
from chatd.rooms import FanoutCount, Room, deliver, tell_once


class IChatClient(Interface):
    """
    A connected user, as the hub sees it.
    """

    name = Attribute("The user's current display name (set by the hub).")
    rooms = Attribute("A tuple of the rooms the user is in, the current one "
                      "last (set by the hub; () at first).")

    def deliver(data):
        """
        Take one or more encoded server lines (CRLF-terminated ``bytes``).
        Must not raise for transport reasons; the hub guards it anyway.
        """


class Hub(OperatorActions):
    """
    The chat: unique names, rooms (everyone starts in the lobby), presence,
    history and private messages.
    """

    log = Logger()

    def __init__(self, presence_limit=None, reserved=None, clock=None, history=0,
                 store=None, max_rooms=1000, max_rooms_per_user=20):
        self.users = {}  # name key -> client
        self._guest_numbers = itertools.count(1)
        # Announce joins and departures only while the room is at most this
        # big (None: always), so a connection storm is not quadratic.
        self.presence_limit = presence_limit
        # reserved(name_key) -> bool: names only their owner may take
        # (registered accounts); the owner claims one with ``claim=True``.
        self.reserved = reserved or (lambda key: False)
        self._now = clock.seconds if clock is not None else seconds
        self.keep = history  # lines kept per room; 0: no history
        self.store = store  # IHistoryStore, or None: kept in memory only
        self.max_rooms = max_rooms
        self.max_rooms_per_user = max_rooms_per_user
        self.fanouts = FanoutCount()  # for the metrics
        self.rooms = {LOBBY: Room(LOBBY, history, self.fanouts)}  # room key -> Room
        self._lobby_only = (self.rooms[LOBBY],)  # shared by most connections
        if store is not None and history:
            self._load(store.load(max_rooms, history))

    def _load(self, saved):
        for name, topic, lines in saved:
            room = self.rooms.setdefault(grammar.room_key(name), Room(name, self.keep, self.fanouts))
            room.topic = topic or ""
            for when, line in lines:
                room.keep(when, line)

    @property
    def lobby(self):
        return self.rooms[LOBBY]

    def __len__(self):
        return len(self.users)

    def _members_online(self, room):
        """
        How many are in ``room`` (a cluster hub counts every node's).
        """
        return len(room)

    def _announce_presence(self, room):
        return self.presence_limit is None or self._members_online(room) <= self.presence_limit

    def _next_guest_number(self):
        return next(self._guest_numbers)  # a cluster hub takes them from Redis

    def _guest_name(self):
        while True:
            name = f"{grammar.GUEST_PREFIX}{self._next_guest_number()}"
            if grammar.name_key(name) not in self.users:
                return name

    # --- users ------------------------------------------------------------

    def connect(self, client, name=None):
        """
        Give ``client`` a free guest name (or claim ``name`` for it, see
        ``rename``), put it in the lobby and tell the others there.
        Returns the name; ``replay`` then sends the lobby's history.
        """
        if name is None:
            name = self._guest_name()
        else:
            self._move_aside(name, client)
        client.name = name
        client.rooms = ()
        self.users[grammar.name_key(name)] = client
        self._enter(client, self.lobby, grammar.joined(name))
        return name

    def disconnect(self, client, reason="", announce=False):
        """
        Remove ``client`` everywhere; everyone who shared a room with it
        hears of its departure once (``*** NAME left (REASON)``; with
        ``announce`` past the presence limit too: a kick is news).
        """
        if self.users.get(grammar.name_key(client.name)) is not client:
            return
        del self.users[grammar.name_key(client.name)]
        rooms, client.rooms = client.rooms, ()
        for room in rooms:
            room.remove(client)
        self._tell_rooms(rooms, grammar.left(client.name, reason), everywhere=announce)
        for room in rooms:
            self._forget_if_empty(room)

    def find(self, name):
        """
        The client called ``name`` (any case), or ``ChatError``.
        """
        client = self.users.get(grammar.name_key(name))
        if client is None:
            raise ChatError(f"no such user: {name}")
        return client

    def _move_aside(self, name, client):
        """
        Whoever else holds ``name`` becomes a fresh guest, and is told why.
        """
        holder = self.users.get(grammar.name_key(name))
        if holder is None or holder is client:
            return
        guest = self._guest_name()
        del self.users[grammar.name_key(name)]
        holder.name = guest
        self.users[grammar.name_key(guest)] = holder
        self._tell_rooms(holder.rooms, grammar.renamed(name, guest), also=holder,
                         everywhere=True)
        self._deliver_to(holder, grammar.notice(
            f"{name} is a registered name and its owner logged in; "
            f"you are now {guest}"))

    def make_way(self, name):
        """
        Before a login to ``name`` takes it: ``None`` here (its holder is
        moved aside by the claim); a cluster hub answers with a ``Deferred``
        while another node lets go of it.
        """
        return None

    def rename(self, client, new, claim=False):
        """
        Rename ``client`` to ``new`` (validated, unique) and tell everyone
        who shares a room with it (only in rooms within the presence limit,
        like joins: a crowd logging in would otherwise be quadratic), and
        ``client`` itself.  ``claim``: ``client`` owns ``new`` (logged in to
        it), so a reserved name is allowed and whoever holds it is moved
        aside.
        """
        grammar.check_name(new)
        old = client.name
        if new == old:
            raise ChatError(f"you are already called {new}")
        if claim:
            self._move_aside(new, client)
        elif self.reserved(grammar.name_key(new)) and \
                grammar.name_key(new) != grammar.name_key(old):
            raise ChatError(f"{new} is a registered name "
                            f"(/login {new} PASSWORD if it is yours)")
        holder = self.users.get(grammar.name_key(new))
        if holder is not None and holder is not client:
            raise ChatError(f"name is taken: {new}")
        if grammar.is_guest_name(new) and grammar.name_key(new) != grammar.name_key(old):
            raise ChatError(f"guest names are given by the server: {new}")
        self._apply_rename(client, new)

    def _apply_rename(self, client, new):
        """
        ``client`` is now ``new`` (already checked), and is announced so.
        """
        old = client.name
        del self.users[grammar.name_key(old)]
        client.name = new
        self.users[grammar.name_key(new)] = client
        self._tell_rooms(client.rooms, grammar.renamed(old, new), also=client)

    def _tell_rooms(self, rooms, line, also=None, everywhere=False):
        """
        ``line`` once to each member of ``rooms`` (those within the presence
        limit, or all with ``everywhere``) and to ``also``.
        """
        tell_once([r for r in rooms if everywhere or self._announce_presence(r)],
                  line, self.log, also)

    def private(self, client, target_name, text):
        """
        Deliver ``text`` to one user only; returns the recipient's name.
        """
        target = self.find(target_name)
        self._deliver_to(target, grammar.private_from(client.name, text))
        return target.name

    def _deliver_to(self, client, *lines):
        data = b"".join(map(grammar.encode_line, lines))
        self.fanouts.bytes += len(data)
        deliver(client, data, self.log)

    def names(self, room=LOBBY):
        return [member.name for member in self.rooms[grammar.room_key(room)].members]

    # --- saying things ------------------------------------------------------

    def say(self, client, text):
        self._said(client, grammar.chat(client.name, text))

    def act(self, client, text):
        self._said(client, grammar.action(client.name, text))

    def _said(self, client, line):
        if not client.rooms:
            raise ChatError(grammar.NO_ROOM)
        room = client.rooms[-1]
        room.broadcast(line, exclude=client)
        self._keep(room, line)

    def notify(self, text, room=None, exclude=None):
        """
        A server notice to everyone in ``room`` (a name; kept in its
        history), or with no room to everyone online.
        """
        line = grammar.notice(text)
        if room is None:
            data = grammar.encode_line(line)
            for client in list(self.users.values()):
                if client is not exclude:
                    deliver(client, data, self.log)
            return
        target = self.rooms.get(grammar.room_key(room))
        if target is not None:
            target.broadcast(line, exclude=exclude)
            self._keep(target, line)

    def _keep(self, room, line):
        if self.keep:
            when = self._now()
            room.keep(when, line)
            if self.store is not None:
                self.store.append(room.key, room.name, when, line)

    # --- rooms --------------------------------------------------------------

    def current(self, client):
        """
        The name of ``client``'s current room, or ``None``.
        """
        return client.rooms[-1].name if client.rooms else None

    def is_member(self, client, name):
        room = self.rooms.get(grammar.room_key(name.lstrip("#")))
        return room is not None and client in room

    def join(self, client, name):
        """
        Enter room ``name`` (created if new) and make it current: the others
        there hear of it, ``client`` gets the room's history and where it is
        (and the topic).  Already in: it just becomes current.
        """
        name = grammar.check_room(name)
        room = self.rooms.get(grammar.room_key(name))
        if room is not None and client in room:
            self._make_current(client, room)
        else:
            if len(client.rooms) >= self.max_rooms_per_user:
                raise ChatError(f"you are in {len(client.rooms)} rooms, the most "
                                f"allowed; /part one first")
            if room is None:
                if len(self.rooms) >= self.max_rooms and not self._forget_idlest():
                    raise ChatError(f"this server has {len(self.rooms)} rooms, the "
                                    f"most it keeps; join one of them (/rooms)")
                room = self.rooms[grammar.room_key(name)] = Room(name, self.keep, self.fanouts)
            self._enter(client, room, grammar.room_joined(client.name, room.name))
            self.replay(client, room)
        lines = [grammar.you_are_in(room.name, self._members_online(room))]
        if room.topic:
            lines.append(grammar.topic(room.name, room.topic))
        self._deliver_to(client, *lines)
        return room.name

    def _enter(self, client, room, line):
        if client.rooms:
            client.rooms[-1].set_current(client, False)
        room.add(client, current=True)
        if not client.rooms and room is self.lobby:
            client.rooms = self._lobby_only  # no tuple per connection
        else:
            client.rooms = client.rooms + (room,)
        if self._announce_presence(room):
            room.broadcast(line, exclude=client, prefixed=False)

    def _make_current(self, client, room):
        if client.rooms[-1] is not room:
            client.rooms[-1].set_current(client, False)
            room.set_current(client, True)
            client.rooms = tuple(r for r in client.rooms if r is not room) + (room,)

    def _room_of(self, client, name=None):
        """
        ``client``'s room called ``name`` (default: the current one).
        """
        if not name:
            if not client.rooms:
                raise ChatError(grammar.NO_ROOM)
            return client.rooms[-1]
        room = self._room(name)
        if client not in room:
            raise ChatError(f"you are not in #{room.name} (/join {room.name})")
        return room

    def _room(self, name):
        name = grammar.check_room(name)
        room = self.rooms.get(grammar.room_key(name))
        if room is None:
            raise ChatError(f"no such room: #{name}")
        return room

    def part(self, client, name=None, reason=""):
        """
        Leave room ``name`` (default: the current one); the others there
        hear of it.  The most recently current of the rooms left becomes
        current.
        """
        room = self._room_of(client, name)
        was_current = client.rooms[-1] is room
        room.remove(client)
        client.rooms = tuple(r for r in client.rooms if r is not room)
        if self._announce_presence(room):
            room.broadcast(grammar.room_left(client.name, room.name, reason),
                           prefixed=False)
        self._forget_if_empty(room)
        lines = [grammar.you_left(room.name)]
        if not client.rooms:
            lines.append(grammar.notice(grammar.NO_ROOM))
        elif was_current:
            now = client.rooms[-1]
            now.set_current(client, True)
            lines.append(grammar.you_are_in(now.name, self._members_online(now)))
        self._deliver_to(client, *lines)

    def _forget_idlest(self):
        """
        Make space for a room: forget the empty one idle longest, with its
        topic and history.  False if every room has members.
        """
        empty = [r for r in self.rooms.values() if not len(r) and r.key != LOBBY]
        if not empty:
            return False
        idlest = min(empty, key=lambda r: r.last_active)
        del self.rooms[idlest.key]
        if self.store is not None:
            self.store.forget(idlest.key)
        return True

    def _forget_if_empty(self, room):
        if room.key != LOBBY and room.forgettable:
            self.rooms.pop(room.key, None)

    def list_rooms(self):
        """
        ``(name, members, topic)`` of every room.
        """
        return [(r.name, len(r), r.topic) for r in self.rooms.values()]

    def who(self, client, name=None):
        """
        ``(room name, member names)`` of a room (default: the current one).
        """
        room = self._room(name) if name else self._room_of(client)
        return room.name, [member.name for member in room.members]

    def topic(self, client, name=None, text=None):
        """
        Show a room's topic (``text`` None) to ``client``, or set it (members
        only): announced to the room, kept with its history.
        """
        if text is None:
            room = self._room(name) if name else self._room_of(client)
            self._deliver_to(client, grammar.topic(room.name, room.topic))
            return
        room = self._room_of(client, name)
        room.topic = grammar.check_topic(text)
        line = grammar.topic_set(client.name, room.name, text)
        room.broadcast(line, prefixed=False)
        self._keep(room, line)
        if self.store is not None and self.keep:
            self.store.set_topic(room.key, room.name, text)

    def replay(self, client, room=None):
        """
        Send ``client`` the kept lines of ``room`` (default: its current
        one), if any, then the end-of-history line.
        """
        if room is None:
            if not client.rooms:
                return
            room = client.rooms[-1]
        if room.history:
            self._deliver_to(client, *[grammar.history_line(when, line)
                                       for when, line in room.history],
                             grammar.end_of_history(room.name))

    def history(self, client, name=None, count=50):
        """
        A Deferred of the last ``count`` kept lines of a room you are in,
        as ``(time, line)`` pairs, read from the store off the reactor thread;
        and the room's name.
        """
        if not self.keep:
            raise ChatError("history is off on this server")
        room = self._room_of(client, name)
        if self.store is None:
            return room.name, defer.succeed(list(room.history)[-count:])
        return room.name, self.store.recent(room.key, count)
