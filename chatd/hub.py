"""
Users, rooms and fan-out, free of transports.

The hub knows clients only through ``IChatClient``: a name and a way to take
encoded lines.  Each broadcast is formatted and encoded once, then handed to
every member; one failing recipient is logged and never breaks the rest.
This is the seam where a Redis-backed hub can later stand in.
"""

import itertools

from twisted.logger import Logger
from zope.interface import Attribute, Interface

from chatd import grammar
from chatd.grammar import ChatError

LOBBY = "lobby"


class IChatClient(Interface):
    """
    A connected user, as the hub sees it.
    """

    name = Attribute("The user's current display name (set by the hub).")

    def deliver(data):
        """
        Take one or more encoded server lines (CRLF-terminated ``bytes``).
        Must not raise for transport reasons; the hub guards it anyway.
        """


class Room:
    """
    A set of members and the fan-out to them.
    """

    log = Logger()

    def __init__(self, name):
        self.name = name
        self.members = {}  # client -> None: insertion-ordered set

    def add(self, client):
        self.members[client] = None

    def remove(self, client):
        self.members.pop(client, None)

    def broadcast(self, line, exclude=None):
        """
        Encode ``line`` once and deliver it to every member but ``exclude``.
        """
        data = grammar.encode_line(line)
        for member in list(self.members):
            if member is exclude:
                continue
            try:
                member.deliver(data)
            except Exception:
                self.log.failure(
                    "delivery to {recipient} in {room} failed",
                    recipient=getattr(member, "name", "?"), room=self.name,
                )


class Hub:
    """
    The chat: unique names, one room (the lobby) for now, presence and
    private messages.
    """

    log = Logger()

    def __init__(self, presence_limit=None, reserved=None):
        self.users = {}  # name key -> client
        self.rooms = {LOBBY: Room(LOBBY)}
        self._guest_numbers = itertools.count(1)
        # Announce joins and departures only while the room is at most this
        # big (None: always), so a connection storm is not quadratic.
        self.presence_limit = presence_limit
        # reserved(name_key) -> bool: names only their owner may take
        # (registered accounts); the owner claims one with ``claim=True``.
        self.reserved = reserved or (lambda key: False)

    @property
    def lobby(self):
        return self.rooms[LOBBY]

    def __len__(self):
        return len(self.users)

    def _announce_presence(self, room):
        return self.presence_limit is None or len(room.members) <= self.presence_limit

    def _next_guest_number(self):
        return next(self._guest_numbers)  # a cluster hub takes them from Redis

    def _guest_name(self):
        while True:
            name = f"{grammar.GUEST_PREFIX}{self._next_guest_number()}"
            if grammar.name_key(name) not in self.users:
                return name

    def connect(self, client, name=None):
        """
        Give ``client`` a free guest name (or claim ``name`` for it, see
        ``rename``), add it to the lobby and tell the others.  Returns the
        name.
        """
        if name is None:
            name = self._guest_name()
        else:
            self._move_aside(name, client)
        client.name = name
        self.users[grammar.name_key(name)] = client
        room = self.lobby
        room.add(client)
        if self._announce_presence(room):
            room.broadcast(grammar.joined(name), exclude=client)
        return name

    def disconnect(self, client, reason=""):
        """
        Remove ``client`` everywhere and announce its departure.
        """
        if self.users.get(grammar.name_key(client.name)) is not client:
            return
        del self.users[grammar.name_key(client.name)]
        for room in self.rooms.values():
            if client in room.members:
                room.remove(client)
                if self._announce_presence(room):
                    room.broadcast(grammar.left(client.name, reason))

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
        self.lobby.broadcast(grammar.renamed(name, guest))
        self._deliver_to(holder, grammar.notice(
            f"{name} is a registered name and its owner logged in; "
            f"you are now {guest}"))

    def rename(self, client, new, claim=False):
        """
        Rename ``client`` to ``new`` (validated, unique) and tell everyone
        (only ``client`` in a room past the presence limit, like joins: a
        crowd logging in would otherwise be quadratic).  ``claim``:
        ``client`` owns ``new`` (logged in to it), so a reserved name is
        allowed and whoever holds it is moved aside.
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
        if self._announce_presence(self.lobby):
            self.lobby.broadcast(grammar.renamed(old, new))
        else:
            self._deliver_to(client, grammar.renamed(old, new))

    def say(self, client, text):
        self.lobby.broadcast(grammar.chat(client.name, text), exclude=client)

    def act(self, client, text):
        self.lobby.broadcast(grammar.action(client.name, text), exclude=client)

    def notify(self, line, exclude=None):
        """
        Send a server notice to everyone in the lobby.
        """
        self.lobby.broadcast(grammar.notice(line), exclude=exclude)

    def private(self, client, target_name, text):
        """
        Deliver ``text`` to one user only; returns the recipient's name.
        """
        target = self.find(target_name)
        self._deliver_to(target, grammar.private_from(client.name, text))
        return target.name

    def _deliver_to(self, client, line):
        """
        One line to one client; a failing recipient is logged, like in
        ``Room.broadcast``, and never breaks the sender's command.
        """
        try:
            client.deliver(grammar.encode_line(line))
        except Exception:
            self.log.failure("delivery to {recipient} failed",
                             recipient=getattr(client, "name", "?"))

    def names(self):
        return [member.name for member in self.lobby.members]
