"""
Hostile rooms and history: bad room names and arguments, room floods
against the limits, hostile text replayed from history (also from a
tampered database), a ``kill -9`` in the middle of a burst, an unreadable
history database, and bad values of the new options.
"""

import sqlite3
import threading
import time

import pytest
from twisted.python import usage

from chatd.tap import Options
from helpers import AdvClient, unsafe_in, wait_until
from test_adv_lines import HOSTILE

HOSTILE_ROOMS = [
    b"#", b"##", b"#a b", b"#" + b"x" * 33, b"#\x1b[2J", b"#a\x00b", b"#\xe2\x80\xaeabc",
    b"#caf\xc3\xa9", b"#a/b", b"#a\\b", b"#..\xff", b"#<alice>", b"#a,b", b"#*",
]


def history_db(d):
    return d.data_dir / "history.sqlite3"


def inert_lines(client, marker):
    """
    The lines up to the one holding ``marker`` (bytes), checked to carry
    no control byte, bidi control or invalid UTF-8.
    """
    data = client.raw_until(marker)
    problem = unsafe_in(data)
    assert problem is None, problem
    return data.decode().split("\r\n")[:-1]


def test_bad_room_names_and_arguments_get_one_answer_each(make_daemon, figure):
    d = make_daemon("--rate", "0")
    a, b = AdvClient(d.port), AdvClient(d.port)
    a.sync()
    b.sync()
    commands = [b"/join " + name for name in HOSTILE_ROOMS] + [
        b"/join", b"/join #a #b", b"/part #nowhere", b"/who #\x1b", b"/topic #nowhere",
        b"/topic #nowhere text", b"/topic #lobby " + b"t" * 301, b"/history #nowhere", b"/history 0", b"/history 99999999999",
        b"/history #lobby 5 extra", b"/history \xd9\xa3",  # an Arabic-Indic 3
    ]
    for command in commands:
        a.send(command + b"\n")
    a.say("/who")
    lines = inert_lines(a, b"- online (")
    errors = [line for line in lines if line.startswith("! ")]
    assert len(errors) == len(commands) and len(lines) == len(commands) + 1, lines
    b.nothing(0.2)  # nobody else heard a thing
    figure("hostile room commands answered", len(commands))


def joins(client, prefix, count):
    """
    ``/join`` rooms PREFIX0.. in one burst; the answers, in order.
    """
    client.send("".join(f"/join #{prefix}{i}\n" for i in range(count)))
    return [client.expect(lambda l: l.startswith(("*** you are in #", "! ")))
            for _ in range(count)]


def test_room_flood_stops_at_the_limits(make_daemon, figure):
    d = make_daemon("--rate", "0", "--max-rooms", "30", "--max-rooms-per-user", "20")
    a, b, c = AdvClient(d.port), AdvClient(d.port), AdvClient(d.port)
    for client in (a, b, c):
        client.sync()
    answers = joins(a, "r", 100)
    assert sum(line.startswith("*** you are in") for line in answers) == 19  # + the lobby
    assert answers[-1] == "! you are in 20 rooms, the most allowed; /part one first"
    answers = joins(b, "s", 100)
    assert sum(line.startswith("*** you are in") for line in answers) == 10
    assert answers[-1] == "! this server has 30 rooms, the most it keeps; join one of them (/rooms)"
    figure("joins refused", 81 + 90)
    c.say("/rooms")
    assert c.expect("- rooms (").startswith("- rooms (30): #lobby (3), ")
    c.nothing(0.2)  # joins to rooms c is not in were not announced to c
    a.send("".join(f"/part #r{i}\n" for i in range(19)))
    a.say("/rooms")  # empty rooms without topic or history are forgotten
    assert a.expect("- rooms (").startswith("- rooms (11): ")
    answers = joins(c, "t", 19)
    assert all(line.startswith("*** you are in") for line in answers), answers
    b.say("/join #overflow")
    assert b.expect("! ") == "! this server has 30 rooms, the most it keeps; join one of them (/rooms)"


def test_hostile_text_in_history_stays_inert(make_daemon, figure):
    d = make_daemon("--rate", "0", "--history", "100")
    a = AdvClient(d.port)
    a.sync()
    a.say("/join #h")
    a.expect("*** you are in #h")
    for i, text in enumerate(HOSTILE):
        a.send(b"m%02d " % i + text + b"\n")
        a.send(b"/me m%02d " % i + text + b"\n")
    a.send(b"/topic #h " + HOSTILE[3] + b"\n")
    a.expect("*** ")
    b = AdvClient(d.port)
    b.say("/join #h")
    lines = inert_lines(b, b"*** you are in #h")
    kept = [line for line in lines if line.startswith("= [")]
    assert len(kept) == 2 * len(HOSTILE) + 1, lines
    figure("hostile lines replayed from history", len(kept))

    # A tampered database: the replay cleans what it reads, too.
    d.stop()
    db = sqlite3.connect(history_db(d))
    with db:
        db.execute("INSERT INTO lines (room, at, line) VALUES ('h', 0, ?)",
                   ("<x> \x1b]0;owned\x07 \u202eevil\r\n*** fake",))
    db.close()
    d.start()
    c = AdvClient(d.port)
    c.say("/join #h")
    lines = inert_lines(c, b"*** you are in #h")
    assert any(line.endswith("\ufffdevil\ufffd\ufffd*** fake") for line in lines), lines


def test_kill_9_during_a_burst_leaves_a_readable_database(make_daemon, figure):
    d = make_daemon("--rate", "0", "--history", "5000")
    sender, watcher = AdvClient(d.port, nodelay=True), AdvClient(d.port)
    sender.sync()
    watcher.sync()
    seen = []  # (monotonic time, number) of each line the watcher got
    stop = threading.Event()

    def send():
        for i in range(200000):
            if stop.is_set():
                return
            try:
                sender.say(f"burst {i}")
            except OSError:
                return
            if i % 50 == 0:
                time.sleep(0.005)

    def watch():
        try:
            while True:
                line = watcher.line(5)
                if line.startswith(f"<{sender.name}> burst "):
                    seen.append((time.monotonic(), int(line.rsplit(" ", 1)[1])))
        except (OSError, ConnectionError):
            pass

    threads = [threading.Thread(target=send), threading.Thread(target=watch)]
    for t in threads:
        t.start()
    assert wait_until(lambda: seen and seen[-1][0] - seen[0][0] > 2.0, 20), len(seen)
    killed_at = time.monotonic()
    d.kill9()
    stop.set()
    for t in threads:
        t.join(10)

    db = sqlite3.connect(history_db(d))
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    kept = [line for (line,) in db.execute(
        "SELECT line FROM lines WHERE room = 'lobby' ORDER BY id")]
    db.close()
    numbers = [int(line.rsplit(" ", 1)[1]) for line in kept]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "out of order"
    older = [n for t, n in seen if t < killed_at - 1.0]
    assert numbers[-1] >= older[-1], (numbers[-1], older[-1])
    figure("lines kept at kill -9", len(numbers))
    figure("lines shown but lost", seen[-1][1] - numbers[-1])

    d.start()  # and the daemon starts on it, replaying the lobby at connect
    c = AdvClient(d.port)
    replay = c.lines_until("- end of history of #lobby")
    assert replay[-2].endswith(f"burst {numbers[-1]}"), replay[-2:]


def test_an_unreadable_history_database_is_set_aside(make_daemon, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "history.sqlite3").write_bytes(b"this is not a database\n" * 100)
    d = make_daemon(data_dir=data)
    a = AdvClient(d.port)
    a.sync()
    a.say("still chatting")
    a.sync()  # said before the daemon stops
    aside = list(data.glob("history.sqlite3.unreadable-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert "is unreadable" in d.log()
    d.stop()
    d.start()
    b = AdvClient(d.port)
    assert b.lines_until("- end of history of #lobby")[-2].endswith(
        f"<{a.name}> still chatting")


@pytest.mark.parametrize("option, value, why", [
    ("--history", "-1", "at least 0"),
    ("--history", "lots", "whole number"),
    ("--history", "1e3", "whole number"),
    ("--max-rooms", "0", "at least 1"),
    ("--max-rooms", "", "whole number"),
    ("--max-rooms-per-user", "0", "at least 1"),
    ("--max-rooms-per-user", "twenty", "whole number"),
])
def test_bad_room_options_are_refused(option, value, why):
    with pytest.raises(usage.UsageError, match=why):
        Options().parseOptions([option, value])
