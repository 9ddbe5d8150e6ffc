"""
Pair mode (``--mode pair``): the classic two-client assignment, free of
transports.

The first connection is client X, the second client Y; X is sent nothing
until Y is there, then each is told ``Client X has connected.`` (or Y) in one
write.  The first message of each is collected, and both get ``X: ...
received before Y: ...`` in the order the messages arrived; from then on
every line is relayed to the other as ``X: text`` / ``Y: text``.  ``Bye``
from either, or either leaving, ends the session: each remaining client gets
a ``***`` line saying why, then ``Bye``, each alone (``farewell``), and is
closed;
the next two connections make the next pair.  A connection arriving while a
pair is in session is told the pair is busy and closed.

The assignment's reference clients are blocking programs that print one
``recv(1024)`` per message, and the extra-credit one stops only on a read
that is exactly ``Bye``: hence one write per message and the lone ``Bye``.

Like the chat hub, ``Pairing`` sees connections only through
``IPairClient``; the protocol passes it decoded, cleaned text.
"""

import itertools

from twisted.logger import Logger
from zope.interface import Attribute, Interface

from chatd import grammar

LABELS = ("X", "Y")
MAX_PENDING = 100  # lines held per client until the other's first message


class IPairClient(Interface):
    """
    One connection, as the pairing sees it.
    """

    peer = Attribute("Where the connection comes from, for the log.")

    def deliver(data):
        """
        Take one or more encoded server lines (CRLF-terminated ``bytes``).
        """

    def close_when_sent():
        """
        Close the connection once everything delivered has been sent.
        """

    def farewell(*writes):
        """
        Write each of ``writes`` (``bytes``) on its own: once everything
        before it has been sent and a short pause has passed, so a client
        that reads one message per ``recv()`` gets it alone.  Then close.
        """


class _Seat:
    """
    A client in the pair: its label, first message and held lines, each
    message as ``(arrived, text)``.
    """

    def __init__(self, client, label):
        self.client = client
        self.label = label
        self.first = None
        self.pending = []


class Pairing:
    """
    The pair-mode policy: seats X and Y, first-message ordering, relay and
    the end of a session.
    """

    log = Logger()

    def __init__(self):
        self.seats = []  # 0, 1 (X waiting) or 2 (a session)
        self.relaying = False  # both first messages are in
        self._ticks = itertools.count()

    def stamp(self):
        """
        A new arrival mark: marks taken later compare greater.
        """
        return next(self._ticks)

    def start(self):
        self.log.info("The server is waiting to receive two connections....")

    @property
    def busy(self):
        return len(self.seats) == len(LABELS)

    def _seat(self, client):
        for seat in self.seats:
            if seat.client is client:
                return seat
        return None

    def _other(self, seat):
        for other in self.seats:
            if other is not seat:
                return other
        return None

    def _send(self, line, *seats):
        data = grammar.encode_line(line)
        for seat in seats:
            try:
                seat.client.deliver(data)
            except Exception:
                self.log.failure("delivery to client {client} failed", client=seat.label)

    # --- arrivals and departures -------------------------------------------

    def join(self, client):
        """
        Seat a new connection; returns its label, or ``None`` if the pair is
        busy (the client has then been told so and is being closed).
        """
        if self.busy:
            self.log.info("Refused connection from {peer}: clients X and Y are in session",
                          peer=client.peer)
            client.deliver(grammar.encode_line(grammar.error(
                "busy: two clients are already paired; try again later")))
            client.close_when_sent()
            return None
        seat = _Seat(client, LABELS[len(self.seats)])
        self.seats.append(seat)
        if len(self.seats) == 1:
            # Nothing is sent yet: the assignment's client reads its first
            # recv() as the confirmation that both are connected.
            self.log.info("Accepted first connection, calling it client {client} ({peer})",
                          client=seat.label, peer=client.peer)
            self.log.info("Waiting for client Y to connect....")
            return seat.label
        self.log.info("Accepted second connection, calling it client {client} ({peer})",
                      client=seat.label, peer=client.peer)
        for each in self.seats:
            self._send(grammar.pair_connected(each.label), each)
        self.log.info("Waiting to receive messages from client X and client Y....")
        self._check_firsts()  # X may have spoken while it waited
        return seat.label

    def leave(self, client):
        """
        A connection is gone: a session ends for the other too.
        """
        seat = self._seat(client)
        if seat is None:
            return
        if self.busy:
            self._end(f"client {seat.label} left", gone=seat)
        else:
            self.log.info("Client {client} left before client Y connected", client=seat.label)
            self._reset()

    # --- messages -------------------------------------------------------------

    def receive(self, client, text, arrived=None):
        """
        One line (decoded, cleaned) from ``client``, which arrived at
        ``arrived`` (a ``stamp()``; now if ``None``).
        """
        seat = self._seat(client)
        if seat is None:
            return  # refused, or left over from an ended session
        if arrived is None:
            arrived = self.stamp()
        if grammar.is_bye(text):
            self._bye(seat, text)
        elif self.relaying:
            self._send(grammar.pair_said(seat.label, text), self._other(seat))
        elif seat.first is None:
            seat.first = (arrived, text)
            self.log.info("Client {client} sent message: {text}", client=seat.label, text=text)
            self._check_firsts()
        elif len(seat.pending) < MAX_PENDING:
            seat.pending.append((arrived, text))
        else:
            self._send(grammar.error(
                f"more than {MAX_PENDING} lines before the other client's first "
                "message; line dropped"), seat)

    def _check_firsts(self):
        if not self.busy or any(seat.first is None for seat in self.seats):
            return
        first, second = sorted(self.seats, key=lambda seat: seat.first[0])
        self._send(grammar.pair_order(first.label, first.first[1],
                                      second.label, second.first[1]), *self.seats)
        self.log.info("{first}: {first_text} received before {second}: {second_text}; "
                      "sent acknowledgment to both X and Y",
                      first=first.label, first_text=first.first[1],
                      second=second.label, second_text=second.first[1])
        self.relaying = True
        # Lines sent ahead of the other's first message, in arrival order
        # (a stable sort: lines from one read share a mark).
        held = sorted(((arrived, seat, text) for seat in self.seats
                       for arrived, text in seat.pending), key=lambda held: held[0])
        for seat in self.seats:
            seat.pending = []
        for _, seat, text in held:
            self._send(grammar.pair_said(seat.label, text), self._other(seat))

    def _bye(self, seat, text):
        other = self._other(seat)
        if other is None:
            self.log.info("Client {client} said Bye before client Y connected",
                          client=seat.label)
        else:
            self._send(grammar.pair_said(seat.label, text), other)
        self._end(f"client {seat.label} said Bye")

    def _end(self, why, gone=None):
        """
        End the session: tell both (but ``gone``, the seat whose connection
        is lost) why, then ``Bye`` on its own, close their connections, and
        wait for the next pair.
        """
        self.log.info("Session over: {why}", why=why)
        seats = [seat for seat in self.seats if seat is not gone]
        self._reset()
        over = grammar.encode_line(grammar.notice(f"session over: {why}"))
        for seat in seats:
            try:
                seat.client.farewell(over, grammar.PAIR_FAREWELL)
            except Exception:
                self.log.failure("closing client {client} failed", client=seat.label)

    def _reset(self):
        self.seats = []
        self.relaying = False
        self.start()
