"""
Pair mode without sockets: the ``Pairing`` policy through fake
``IPairClient``s, and ``PairProtocol`` over a ``StringTransport`` with a
``task.Clock`` (the no-newline fragment rule and arrival order).
"""

import pytest
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.python import usage
from zope.interface import implementer
from zope.interface.verify import verifyObject

from chatd import grammar
from chatd.limits import Limits
from chatd.pair import MAX_PENDING, IPairClient, Pairing
from chatd.pair_protocol import FAREWELL_PAUSE, FAREWELL_TIMEOUT, PairFactory, PairProtocol
from chatd.protocol import FRAGMENT_DELAY
from chatd.tap import Options


@implementer(IPairClient)
class FakeClient:
    def __init__(self, peer="127.0.0.1:1"):
        self.peer = peer
        self.data = b""
        self.closed = False
        self.farewell_writes = None

    def deliver(self, data):
        assert isinstance(data, bytes) and data.endswith(b"\r\n")
        assert not self.closed, "delivered after close"
        self.data += data

    def close_when_sent(self):
        self.closed = True

    def farewell(self, *writes):
        assert not self.closed, "farewell after close"
        self.farewell_writes = list(writes)
        self.closed = True

    def lines(self):
        data, self.data = self.data, b""
        return data.decode("utf-8").split("\r\n")[:-1]

    def said_bye(self, why):
        """
        The session ended with ``*** session over: WHY``, then ``Bye``.
        """
        return self.closed and self.farewell_writes == [
            f"*** session over: {why}\r\n".encode(), b"Bye"]


@pytest.fixture
def pairing():
    return Pairing()


def pair_up(pairing):
    x, y = FakeClient(), FakeClient()
    assert pairing.join(x) == "X"
    assert pairing.join(y) == "Y"
    x.lines(), y.lines()
    return x, y


def test_fake_client_provides_the_interface():
    verifyObject(IPairClient, FakeClient())


def test_x_is_sent_nothing_until_y_then_each_one_confirmation(pairing):
    x, y = FakeClient(), FakeClient()
    x.deliver = record_writes(x)
    y.deliver = record_writes(y)
    assert pairing.join(x) == "X"
    assert x.writes == []
    assert pairing.join(y) == "Y"
    assert x.writes == [b"Client X has connected.\r\n"]
    assert y.writes == [b"Client Y has connected.\r\n"]


def record_writes(client):
    """
    Make ``client`` keep each ``deliver`` call apart, in ``client.writes``.
    """
    client.writes = []
    deliver = client.deliver

    def recording(data):
        client.writes.append(data)
        deliver(data)
    return recording


def test_order_report_is_one_write(pairing):
    x, y = pair_up(pairing)
    x.deliver, y.deliver = record_writes(x), record_writes(y)
    pairing.receive(x, "Alice")
    pairing.receive(y, "Bob")
    assert x.writes == y.writes == [b"X: Alice received before Y: Bob\r\n"]


@pytest.mark.parametrize("first", ["X", "Y"])
def test_first_messages_in_arrival_order(pairing, first):
    x, y = pair_up(pairing)
    clients = {"X": x, "Y": y}
    second = "Y" if first == "X" else "X"
    pairing.receive(clients[first], f"from {first}")
    assert x.lines() == y.lines() == []
    pairing.receive(clients[second], f"from {second}")
    expected = [f"{first}: from {first} received before {second}: from {second}"]
    assert x.lines() == y.lines() == expected


def test_order_follows_arrival_marks_not_processing_order(pairing):
    x, y = pair_up(pairing)
    early = pairing.stamp()
    pairing.receive(y, "processed first", pairing.stamp())
    pairing.receive(x, "arrived first", early)
    assert x.lines() == ["X: arrived first received before Y: processed first"]


def test_relay_goes_to_the_other_only(pairing):
    x, y = pair_up(pairing)
    pairing.receive(x, "a")
    pairing.receive(y, "b")
    x.lines(), y.lines()
    pairing.receive(x, "hello Y")
    pairing.receive(y, "hello X")
    assert y.lines() == ["X: hello Y"]
    assert x.lines() == ["Y: hello X"]


def test_lines_before_the_others_first_are_held_then_relayed_in_order(pairing):
    x, y = pair_up(pairing)
    pairing.receive(x, "first")
    pairing.receive(x, "second")
    pairing.receive(x, "third")
    assert y.lines() == []
    pairing.receive(y, "mine")
    assert y.lines() == ["X: first received before Y: mine", "X: second", "X: third"]
    assert x.lines() == ["X: first received before Y: mine"]


def test_lines_from_one_read_keep_their_order(pairing):
    x, y = pair_up(pairing)
    mark = pairing.stamp()
    for text in ("one", "zz", "aa"):
        pairing.receive(x, text, mark)
    pairing.receive(y, "b")
    assert y.lines()[1:] == ["X: zz", "X: aa"]


def test_held_lines_are_bounded(pairing):
    x, y = pair_up(pairing)
    pairing.receive(x, "first")
    for i in range(MAX_PENDING + 1):
        pairing.receive(x, f"line {i}")
    assert x.lines() == [
        f"! more than {MAX_PENDING} lines before the other client's first message; "
        "line dropped"]
    pairing.receive(y, "b")
    assert len(y.lines()) == 1 + MAX_PENDING


def test_message_sent_while_waiting_counts_as_first(pairing):
    x = FakeClient()
    pairing.join(x)
    pairing.receive(x, "early bird")
    y = FakeClient()
    pairing.join(y)
    pairing.receive(y, "late")
    assert y.lines()[-1] == "X: early bird received before Y: late"


@pytest.mark.parametrize("bye", ["Bye", "bye", "  BYE \t"])
@pytest.mark.parametrize("relaying", [False, True])
def test_bye_from_either_ends_the_session_for_both(pairing, bye, relaying):
    x, y = pair_up(pairing)
    if relaying:
        pairing.receive(x, "a")
        pairing.receive(y, "b")
        x.lines(), y.lines()
    pairing.receive(y, bye)
    assert x.lines() == [f"Y: {bye}"]
    assert y.lines() == []
    assert x.said_bye("client Y said Bye") and y.said_bye("client Y said Bye")
    # The next two make a new pair; the old ones are forgotten.
    pairing.receive(x, "stale")
    pairing.leave(x)
    a, b = FakeClient(), FakeClient()
    assert (pairing.join(a), pairing.join(b)) == ("X", "Y")
    assert not a.closed and not b.closed


@pytest.mark.parametrize("text", ["Bye now", "goodbye", "Bye!"])
def test_only_bye_itself_ends(pairing, text):
    x, y = pair_up(pairing)
    pairing.receive(x, "a")
    pairing.receive(y, "b")
    y.lines()
    pairing.receive(x, text)
    assert y.lines() == [f"X: {text}"]
    assert not x.closed and not y.closed


def test_leaving_mid_session_tells_and_closes_the_other(pairing):
    x, y = pair_up(pairing)
    pairing.leave(x)
    assert y.said_bye("client X left")
    assert not x.closed  # x is gone already: nothing to close
    assert x.lines() == []
    assert pairing.join(FakeClient()) == "X"


def test_first_leaving_while_waiting_frees_the_seat(pairing):
    x = FakeClient()
    pairing.join(x)
    pairing.leave(x)
    assert pairing.join(FakeClient()) == "X"


def test_bye_while_waiting_closes_only_that_client(pairing):
    x = FakeClient()
    pairing.join(x)
    x.lines()
    pairing.receive(x, "Bye")
    assert x.said_bye("client X said Bye")
    assert pairing.join(FakeClient()) == "X"


def test_third_client_is_refused_while_a_pair_is_in_session(pairing):
    x, y = pair_up(pairing)
    third = FakeClient()
    assert pairing.join(third) is None
    assert third.lines() == ["! busy: two clients are already paired; try again later"]
    assert third.closed
    pairing.receive(third, "hi")
    pairing.leave(third)
    assert x.lines() == y.lines() == [] and not x.closed and not y.closed


def test_a_broken_client_does_not_break_the_other(pairing):
    x, y = pair_up(pairing)

    def broken(data):
        raise OSError("broken pipe")

    x.deliver = broken
    pairing.receive(x, "a")
    pairing.receive(y, "b")
    assert y.lines() == ["X: a received before Y: b"]


# --- the protocol over a StringTransport ---------------------------------------


@pytest.fixture
def factory():
    return PairFactory(Pairing(), task.Clock(), limits=Limits(rate=0))


def connect(factory, port):
    p = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
    transport = StringTransport()
    p.makeConnection(transport)
    return p, transport


def received(transport):
    data = transport.value()
    transport.clear()
    return data.decode("utf-8").split("\r\n")[:-1]


def test_protocol_provides_the_interface(factory):
    p, _ = connect(factory, 1)
    assert isinstance(p, PairProtocol)
    verifyObject(IPairClient, p)
    assert p.label == "X" and p.peer


def test_no_newline_fragment_is_a_message_and_keeps_its_arrival(factory):
    clock = factory.clock
    x, tx = connect(factory, 1)
    y, ty = connect(factory, 2)
    received(tx), received(ty)
    x.dataReceived(b"Alice")  # a raw send() with no newline
    clock.advance(0.1)
    y.dataReceived(b"Bob\r\n")  # complete at once, but later
    assert received(ty) == []
    clock.advance(FRAGMENT_DELAY)
    assert received(tx) == received(ty) == ["X: Alice received before Y: Bob"]
    y.dataReceived(b"How are you")
    clock.advance(FRAGMENT_DELAY)
    assert received(tx) == ["Y: How are you"]


def test_a_line_in_pieces_keeps_its_first_arrival(factory):
    x, tx = connect(factory, 1)
    y, ty = connect(factory, 2)
    x.dataReceived(b"Al")
    y.dataReceived(b"Bob\nmore from Y\n")
    received(tx), received(ty)
    x.dataReceived(b"ice\n")
    assert received(ty) == ["X: Alice received before Y: Bob"]
    assert received(tx) == ["X: Alice received before Y: Bob", "Y: more from Y"]


def test_control_characters_are_cleaned(factory):
    x, tx = connect(factory, 1)
    y, ty = connect(factory, 2)
    received(ty)
    x.dataReceived(b"\x1b[31mred\xff\n")
    y.dataReceived(b"ok\n")
    assert received(ty) == ["X: \ufffd[31mred\ufffd received before Y: ok"]


def test_connection_lost_ends_the_session(factory):
    x, tx = connect(factory, 1)
    y, ty = connect(factory, 2)
    received(ty)
    x.connectionLost(None)
    third, t3 = connect(factory, 3)
    assert third.label == "X"
    say_farewell(factory, ty, "client X left")


def say_farewell(factory, transport, why):
    """
    Each time the transport drains, after the pause, one write alone: the
    session-over line, then ``Bye``; then the close.
    """
    for data in (f"*** session over: {why}\r\n".encode(), b"Bye"):
        assert transport.value() == b"" and not transport.disconnecting
        transport.producer.resumeProducing()  # TCP does this once its buffer is empty
        assert transport.producer is None  # unregistered, or it would keep a close back
        factory.clock.advance(FAREWELL_PAUSE * 0.9)
        assert transport.value() == b""
        factory.clock.advance(FAREWELL_PAUSE * 0.2)
        assert transport.value() == data
        transport.clear()
    assert transport.disconnecting and not transport.disconnected


@pytest.mark.parametrize("who", ["X", "Y"])
def test_bye_waits_for_the_drain_and_a_pause_then_each_write_alone(factory, who):
    x, tx = connect(factory, 1)
    y, ty = connect(factory, 2)
    received(tx), received(ty)
    (x if who == "X" else y).dataReceived(b"Bye")  # no newline
    factory.clock.advance(FRAGMENT_DELAY)
    assert received(tx) == ([] if who == "X" else ["Y: Bye"])
    assert received(ty) == ([] if who == "Y" else ["X: Bye"])
    for transport in (tx, ty):
        say_farewell(factory, transport, f"client {who} said Bye")


def test_end_of_input_after_bye_still_gets_the_farewell(factory):
    x, tx = connect(factory, 1)
    y, ty = connect(factory, 2)
    received(tx)
    x.dataReceived(b"Bye")
    x.readConnectionLost()  # printf Bye | nc -N: the fragment ends with the input
    say_farewell(factory, tx, "client X said Bye")


def test_a_client_that_never_reads_its_last_lines_is_cut_off(factory):
    x, tx = connect(factory, 1)
    y, ty = connect(factory, 2)
    x.dataReceived(b"Bye\n")
    factory.clock.advance(FAREWELL_TIMEOUT - 1)
    assert not tx.disconnecting
    factory.clock.advance(1)
    assert tx.disconnected  # aborted


def test_leaving_during_the_pause_cancels_the_farewell(factory):
    x, tx = connect(factory, 1)
    y, ty = connect(factory, 2)
    x.dataReceived(b"Bye\n")
    tx.producer.resumeProducing()
    received(tx)
    waiting = len(factory.clock.getDelayedCalls())
    x.connectionLost(None)
    assert len(factory.clock.getDelayedCalls()) == waiting - 2  # the pause, the timeout
    factory.clock.advance(FAREWELL_TIMEOUT)
    assert tx.value() == b"" and not tx.disconnected


def test_mode_option():
    assert Options().parseOptions([]) is None
    options = Options()
    options.parseOptions([])
    assert options["mode"] == "chat"
    options = Options()
    options.parseOptions(["--mode", "pair"])
    assert options["mode"] == "pair"
    with pytest.raises(usage.UsageError, match="--mode must be one of chat, pair"):
        Options().parseOptions(["--mode", "pairs"])
