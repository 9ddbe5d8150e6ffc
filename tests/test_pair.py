"""
Pair mode over loopback: a real ``twistd -n chatd --mode pair`` and
blocking socket clients, as the two-client assignment uses it.
"""

import subprocess
import time

import pytest

from daemon import TWISTD, wait_until_read

CONNECTED = {"X": "Client X has connected.", "Y": "Client Y has connected."}
BUSY = "! busy: two clients are already paired; try again later"


@pytest.fixture
def daemon(pair_daemon):
    return pair_daemon


def pair_up(daemon):
    """
    Connect X then Y; both have read their confirmation line.
    """
    x = connect_x(daemon)
    x.nothing(0.1)  # X is sent nothing before Y is there
    y = daemon.client(greet=False)
    assert y.line() == CONNECTED["Y"]
    assert x.line() == CONNECTED["X"]
    return x, y


def connect_x(daemon):
    """
    Connect as client X, once the server has seated it (it sends nothing).
    """
    accepted = "Accepted first connection, calling it client X"
    seated = daemon.log().count(accepted)
    x = daemon.client(greet=False)
    daemon.wait_log(accepted, seated + 1)
    return x


def said_bye(*clients):
    """
    Each client's last bytes are ``Bye`` alone, then the connection closes.
    """
    for client in clients:
        assert client.closed() and client.buffer == b"Bye"


def first_messages(daemon, first, first_text, second, second_text):
    """
    ``first`` sends, the server has it (see the log), then ``second``.
    """
    first.say(first_text)
    daemon.wait_log(f"sent message: {first_text}")
    second.say(second_text)


def test_x_first_relay_and_bye_from_y(daemon):
    daemon.wait_log("The server is waiting to receive two connections....")
    x, y = pair_up(daemon)
    first_messages(daemon, x, "Alice", y, "Bob")
    assert x.line() == y.line() == "X: Alice received before Y: Bob"
    x.say("hi Bob")
    assert y.line() == "X: hi Bob"
    y.say("hi Alice")
    assert x.line() == "Y: hi Alice"
    x.nothing(0.1)  # no echo of one's own lines
    y.say("Bye")
    assert x.line() == "Y: Bye"
    assert x.line() == y.line() == "*** session over: client Y said Bye"
    said_bye(x, y)
    log = daemon.log()
    for line in ("Accepted first connection, calling it client X",
                 "Accepted second connection, calling it client Y",
                 "Waiting to receive messages from client X and client Y....",
                 "Client X sent message: Alice", "Client Y sent message: Bob",
                 "X: Alice received before Y: Bob; sent acknowledgment to both X and Y",
                 "Session over: client Y said Bye"):
        assert line in log, line
    daemon.wait_log("The server is waiting to receive two connections....", count=2)


def test_y_first_and_bye_from_x(daemon):
    x, y = pair_up(daemon)
    first_messages(daemon, y, "Bob", x, "Alice")
    assert x.line() == y.line() == "Y: Bob received before X: Alice"
    y.say("and you?")
    assert x.line() == "Y: and you?"
    x.say("  bye ")  # any case, spaces ignored
    assert y.line() == "X:   bye "
    assert y.line() == x.line() == "*** session over: client X said Bye"
    said_bye(x, y)


def test_assignment_clients_send_without_newline(daemon):
    """
    Hand-written clients send each message as one raw send(), no newline,
    and read with recv(); the half-second fragment rule makes them lines.
    """
    x, y = pair_up(daemon)
    x.send("Alice")
    # Y's message comes later (complete at once) but within 0.5 s: once
    # the server has read X's bytes.
    wait_until_read(daemon.port, x)
    y.say("Bob")
    assert x.line(3) == y.line(3) == "X: Alice received before Y: Bob"
    y.send("Hello from Y")
    assert x.line(3) == "Y: Hello from Y"
    x.send("Bye")
    assert y.line(3) == "X: Bye"
    assert x.line() == y.line() == "*** session over: client X said Bye"
    said_bye(x, y)


def test_a_client_dropping_mid_session_ends_it_for_the_other(daemon):
    x, y = pair_up(daemon)
    first_messages(daemon, x, "one", y, "two")
    assert x.line() == y.line() == "X: one received before Y: two"
    x.close()
    assert y.line() == "*** session over: client X left"
    said_bye(y)
    daemon.wait_log("Session over: client X left")
    # The next pair forms as usual.
    x2, y2 = pair_up(daemon)
    first_messages(daemon, y2, "three", x2, "four")
    assert x2.line() == "Y: three received before X: four"


def test_dropping_before_the_first_messages(daemon):
    x, y = pair_up(daemon)
    y.close()
    assert x.line() == "*** session over: client Y left"
    said_bye(x)


def test_two_pairs_in_a_row(daemon):
    for n in range(2):
        x, y = pair_up(daemon)
        first_messages(daemon, x, f"x{n}", y, f"y{n}")
        assert y.line() == x.line() == f"X: x{n} received before Y: y{n}"
        x.say("Bye")
        assert x.expect("*** session over") and y.expect("*** session over")
        said_bye(x, y)
    daemon.wait_log("Accepted first connection, calling it client X", count=2)


def test_third_connection_is_refused_while_busy(daemon):
    x, y = pair_up(daemon)
    third = daemon.client(greet=False)
    assert third.line() == BUSY
    assert third.closed()
    first_messages(daemon, x, "a", y, "b")  # the pair is undisturbed
    assert y.line() == "X: a received before Y: b"
    fourth = daemon.client(greet=False)  # also once messages flow
    assert fourth.line() == BUSY
    assert fourth.closed()
    daemon.wait_log("Refused connection from 127.0.0.1", count=2)
    x.say("still here")
    assert y.line() == "X: still here"


def test_x_may_speak_before_y_arrives(daemon):
    x = connect_x(daemon)
    x.say("early")
    daemon.wait_log("Client X sent message: early")
    y = daemon.client(greet=False)
    assert y.line() == CONNECTED["Y"]
    y.say("late")
    assert y.line() == "X: early received before Y: late"
    assert [x.line(), x.line()] == [CONNECTED["X"], "X: early received before Y: late"]


def test_bye_while_waiting_frees_the_seat(daemon):
    x = connect_x(daemon)
    x.say("Bye")
    assert x.line() == "*** session over: client X said Bye"
    said_bye(x)
    again = connect_x(daemon)
    y = daemon.client(greet=False)
    assert (again.line(), y.line()) == (CONNECTED["X"], CONNECTED["Y"])


def test_chat_mode_is_still_the_default(make_daemon):
    make_daemon("--mode", "chat").client()  # greets with "*** Welcome"
    make_daemon().client()


def test_bad_mode_is_a_usage_error(tmp_path):
    done = subprocess.run([TWISTD, "-n", "--pidfile=", "chatd", "--mode", "duo"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "--mode must be one of chat, pair, not 'duo'" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
