"""
Pair mode's end of session under hostile clients: the lone ``Bye`` is
written after a drain and a pause, so the connection outlives its session
for a moment.  Nothing a client does then may reach anyone, delay the next
pair, or crash the daemon.
"""

import socket
import struct

import pytest

from daemon import Client, Daemon

OVER = "*** session over: client X said Bye"


@pytest.fixture
def pair(tmp_path):
    d = Daemon(tmp_path / "data", "--mode", "pair").start()
    d.wait_log("Client X left before client Y connected")  # the start-up probe
    yield d
    d.stop()


def seat_pair(daemon):
    accepted = "Accepted first connection, calling it client X"
    seated = daemon.log().count(accepted)
    x = Client(daemon.port, greet=False)
    daemon.wait_log(accepted, seated + 1)
    y = Client(daemon.port, greet=False)
    assert (x.line(), y.line()) == ("Client X has connected.", "Client Y has connected.")
    return x, y


def assert_clean_log(daemon):
    log = daemon.log()
    assert "Traceback" not in log and "Unhandled" not in log, log


def test_lines_sent_after_bye_reach_nobody_and_the_next_pair_forms_meanwhile(pair):
    x, y = seat_pair(pair)
    x.say("Bye")
    x.send(b"".join(b"after bye %d\n" % i for i in range(2000)))
    assert y.line() == "X: Bye"
    # The next pair is seated while X and Y are still being said goodbye to.
    a, b = seat_pair(pair)
    a.say("first")
    pair.wait_log("Client X sent message: first")
    b.say("second")
    assert a.line() == b.line() == "X: first received before Y: second"
    for client in (x, y):
        assert client.line() == OVER
        assert client.closed() and client.buffer == b"Bye"
    a.nothing(0.2)
    b.nothing(0.2)
    assert_clean_log(pair)


def test_bye_then_reset_leaves_the_other_its_farewell(pair):
    x, y = seat_pair(pair)
    x.say("Bye")
    pair.wait_log("Session over: client X said Bye")
    # RST instead of FIN, while the server waits to send X its last lines.
    x.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    x.close()
    assert y.line() == "X: Bye"
    assert y.line() == OVER
    assert y.closed() and y.buffer == b"Bye"
    assert_clean_log(pair)


def test_half_close_right_after_bye_still_gets_the_last_lines(pair):
    x, y = seat_pair(pair)
    x.send("Bye")  # no newline, then end of input: printf Bye | nc -N
    x.sock.shutdown(socket.SHUT_WR)
    assert x.line() == OVER
    assert x.closed() and x.buffer == b"Bye"
    assert y.line() == "X: Bye" and y.line() == OVER
    assert y.closed() and y.buffer == b"Bye"
    assert_clean_log(pair)
