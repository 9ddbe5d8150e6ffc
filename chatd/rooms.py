"""
A room: its members, topic and recent lines, and the fan-out to it.

Members whose current room this is get a line as is; members who are here
but looking at another room get it with the room in front (``[#dev] ...``).
The two groups are kept apart, so a broadcast tests nothing per recipient.
No transports here: members are ``IChatClient``s.
"""

from collections import deque

from twisted.logger import Logger

from chatd import grammar


class FanoutCount:
    """
    Fan-out passes, the lines they handed out and their bytes (and of lines
    to one client), for the metrics: a few integer operations per
    broadcast, never one per recipient.
    """

    __slots__ = ("passes", "deliveries", "bytes")

    def __init__(self):
        self.passes = 0
        self.deliveries = 0
        self.bytes = 0


class Room:
    """
    Members (``here``: this is their current room; ``away``: another one
    is), a topic, and the last lines said (a ring, newest last).
    """

    log = Logger()

    def __init__(self, name, keep=0, fanouts=None):
        self.name = name  # as first written, without "#"
        self.fanouts = fanouts if fanouts is not None else FanoutCount()
        self.here = {}  # client -> None: insertion-ordered sets
        self.away = {}
        self.topic = ""
        # (time, line) pairs, as the line was shown; None: history off.
        self.history = deque(maxlen=keep) if keep else None
        self.last_active = 0.0

    @property
    def key(self):
        return grammar.room_key(self.name)

    def __len__(self):
        return len(self.here) + len(self.away)

    def __contains__(self, client):
        return client in self.here or client in self.away

    @property
    def members(self):
        """
        Every member, the current ones first.
        """
        return [*self.here, *self.away]

    def add(self, client, current):
        self.here.pop(client, None)
        self.away.pop(client, None)
        (self.here if current else self.away)[client] = None

    def remove(self, client):
        self.here.pop(client, None)
        self.away.pop(client, None)

    def set_current(self, client, current):
        """
        Move a member between the two groups (no-op if already there).
        """
        if current and client in self.away:
            del self.away[client]
            self.here[client] = None
        elif not current and client in self.here:
            del self.here[client]
            self.away[client] = None

    @property
    def forgettable(self):
        """
        Whether nothing would be lost by dropping this room from memory.
        """
        return not self.here and not self.away and not self.topic and not self.history

    def keep(self, when, line):
        self.last_active = when
        if self.history is not None:
            self.history.append((when, line))

    def broadcast(self, line, exclude=None, prefixed=True):
        """
        Encode ``line`` once (and once with the room in front, for members
        elsewhere; ``prefixed=False``: a line that names the room itself)
        and deliver it to every member but ``exclude``.
        """
        data = grammar.encode_line(line)
        self.fanouts.passes += 1
        self._deliver(self.here, data, exclude)
        if self.away:
            if prefixed:
                data = grammar.encode_line(grammar.in_room(self.name, line))
            self._deliver(self.away, data, exclude)

    def _deliver(self, members, data, exclude):
        # ``deliver``'s guard, inlined: this loop runs once per recipient of
        # every line, and a call per recipient costs more than the rest.
        recipients = len(members) - (exclude in members)
        self.fanouts.deliveries += recipients
        self.fanouts.bytes += recipients * len(data)
        for member in list(members):
            if member is exclude:
                continue
            try:
                member.deliver(data)
            except Exception:
                self.log.failure("delivery to {recipient} failed",
                                 recipient=getattr(member, "name", "?"), room=self.name)


def deliver(client, data, log, **where):
    """
    Encoded lines to one client; a failing recipient is logged (with
    ``where`` it was) and never breaks a broadcast or the sender's command.
    """
    try:
        client.deliver(data)
    except Exception:
        log.failure("delivery to {recipient} failed",
                    recipient=getattr(client, "name", "?"), **where)


def tell_once(rooms, line, log, also=None):
    """
    ``line`` once to each member of ``rooms`` (however many of them it
    shares) and to ``also``.
    """
    if len(rooms) == 1 and (also is None or also in rooms[0]):
        rooms[0].broadcast(line, prefixed=False)
        return
    audience = dict.fromkeys(m for r in rooms for m in r.members)
    if also is not None:
        audience[also] = None
    data = grammar.encode_line(line)
    for member in audience:
        deliver(member, data, log)
