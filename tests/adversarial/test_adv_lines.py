"""
Hostile lines: no newline at all, over-long lines in every framing, control
and bidi characters, and look-alike nicknames.
"""

import random
import time

from helpers import FAST, MiB, AdvClient, rtt, unsafe_in

LONG_LINE_ERROR = "! line too long (over 4096 bytes)"


def test_4mib_without_newline_then_a_normal_line(make_daemon, figure):
    d = make_daemon()
    flooder, b, c = AdvClient(d.port), AdvClient(d.port), AdvClient(d.port)
    for client in (flooder, b, c):
        client.sync()
    rss_before = d.rss()

    start = time.monotonic()
    flooder.send(b"x" * (4 * MiB))
    latency = rtt(b, c)
    figure("bystander latency during the flood", latency, "s")
    assert latency < FAST
    flooder.send(b"x" * 1000 + b"\nafter the flood\n")
    seen = c.lines_until(f"<{flooder.name}> after the flood")
    figure("4 MiB skipped and the next line delivered in", time.monotonic() - start, "s")
    assert seen == [f"<{flooder.name}> after the flood"], seen
    seen = flooder.sync()
    errors = [line for line in seen if line.startswith("!")]
    others = [line for line in seen if not line.startswith(f"<{b.name}> ping-")]
    assert others == errors and len(errors) == 1, seen  # exactly one error line
    assert errors[0].startswith(LONG_LINE_ERROR), errors

    rss_after = d.rss()
    figure("RSS growth", (rss_after - rss_before) / MiB, "MiB")
    assert rss_after - rss_before < 2 * MiB, "the unterminated line was buffered"

    flooder.say("and another")
    assert c.line() == f"<{flooder.name}> and another"
    assert flooder.sync() == []
    assert d.proc.poll() is None


def _trial(sender, receiver, payload, mode, tag, rng):
    """
    Send ``payload`` then a newline in one framing; return what the sender
    and the receiver get up to a marker line sent right after.
    """
    data = payload + b"\n"
    if mode == "whole":
        sender.send(data)
    elif mode == "bytes":
        for i in range(len(data)):
            sender.send(data[i:i + 1])
    else:
        i = 0
        while i < len(data):
            n = rng.choice((1, 2, 3, 7, 100, 1000, 1500, 4095, 4096, 4097, 9000))
            sender.send(data[i:i + n])
            i += n
            if rng.random() < 0.1:
                time.sleep(0.002)
    sender.say(tag)
    got = receiver.lines_until(f"<{sender.name}> {tag}", 10)[:-1]
    answers = sender.sync(10)
    return answers, got


def test_long_lines_same_result_in_every_framing(make_daemon, figure):
    d = make_daemon("--rate", "0")
    sender = AdvClient(d.port, nodelay=True)
    receiver = AdvClient(d.port)
    sender.sync()
    receiver.sync()
    rng = random.Random(5)
    rss_before = d.rss()
    start = time.monotonic()
    trials = 0

    # At the limit a line (with or without its CR) is fine, delivered whole.
    for ending in (b"", b"\r"):
        for mode in ("whole", "chunks"):
            payload = b"k" * 4096 + ending
            answers, got = _trial(sender, receiver, payload, mode, f"edge{trials}", rng)
            trials += 1
            assert answers == [], answers
            assert got == [f"<{sender.name}> " + "k" * 4096], [g[:80] for g in got]

    for size in (4097, 4098, 5000, 16384, 16385, 65536):
        payload = bytes(rng.choice(b"abcdefgh\r\t\x00\xff /") for _ in range(size - 1))
        payload += b"z"  # not a CR: that would end a CRLF line one byte shorter
        modes = ("whole", "chunks", "bytes") if size == 5000 else ("whole", "chunks")
        results = {}
        for mode in modes:
            answers, got = _trial(sender, receiver, payload, mode, f"mark{trials}", rng)
            trials += 1
            results[mode] = (answers, got)
            assert len(answers) == 1 and answers[0].startswith(LONG_LINE_ERROR), \
                (size, mode, [a[:80] for a in answers])
            assert got == [], (size, mode, [g[:80] for g in got])
        assert len(set(map(repr, results.values()))) == 1, (size, results)

    # A 4097-byte line of the CRLF kind is over the limit too.
    answers, got = _trial(sender, receiver, b"c" * 4097 + b"\r", "whole", "crlf", rng)
    assert len(answers) == 1 and answers[0].startswith(LONG_LINE_ERROR), answers
    assert got == []

    figure("trials", trials)
    figure("duration of all trials", time.monotonic() - start, "s")
    latency = rtt(receiver, sender)
    figure("bystander latency", latency, "s")
    assert latency < FAST
    growth = d.rss() - rss_before
    figure("RSS growth", growth / MiB, "MiB")
    assert growth < 4 * MiB


HOSTILE = [
    b"bare\rcarriage return",
    b"\rat the start",
    b"at the end\r\r",
    b"\x1b[31mred\x1b[0m \x1b[2J\x1b[H cleared",
    b"\x1b]0;new window title\x07",
    b"\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\",
    b"\x1bP+q\x1b\\ dcs",
    b"nul\x00byte",
    b"bell\x07 backspace\x08\x08 tab\t vt\x0b ff\x0c",
    b"\x7f del",
    b"c1 csi \xc2\x9b31m and nel \xc2\x85 and st \xc2\x9c",
    b"raw 8-bit csi \x9b31m",
    b"bidi \xe2\x80\xaeevil.exe\xe2\x80\xac and \xe2\x80\xabrle\xe2\x80\xaa lre \xe2\x80\xad",
    b"isolates \xe2\x81\xa6x\xe2\x81\xa7y\xe2\x81\xa8z\xe2\x81\xa9",
    b"separators \xe2\x80\xa8 line \xe2\x80\xa9 paragraph",
    b"invalid \xff\xfe utf8 \xc3",
    b"overlong \xc0\xaf and surrogate \xed\xa0\x80",
    b"truncated \xe2\x80",
]

HOSTILE_NICKS = [
    b"evil\x1b[2J", b"a\x00b", b"\xe2\x80\xaeabc", b"ab\xc2\x85", b"ab\xff",
    b"a\rb", b"a\x1b", b"x\x9by", b"nick\xe2\x81\xa6", b"\x7fdel",
]


def test_control_and_bidi_never_relayed_raw(make_daemon, figure):
    d = make_daemon("--rate", "0")
    a, b = AdvClient(d.port), AdvClient(d.port)
    a.sync()
    b.sync()
    for i, text in enumerate(HOSTILE):
        a.send(b"m%02d " % i + text + b"\n")
        a.send(b"/me m%02d " % i + text + b"\n")
        a.send(b"/msg " + b.name.encode() + b" m%02d " % i + text + b"\n")
    for nick in HOSTILE_NICKS:
        a.send(b"/nick " + nick + b"\n")
    a.say("done")
    a.say("/who")
    received = b.raw_until(f"<{a.name}> done".encode())
    answers = a.raw_until(b"- online (")

    problem = unsafe_in(received)
    assert problem is None, problem
    problem = unsafe_in(answers)
    assert problem is None, problem

    lines = received.decode().split("\r\n")[:-1]
    assert not [l for l in lines if "known as" in l], lines
    chat = [l for l in lines if l.startswith(f"<{a.name}> m")]
    acts = [l for l in lines if l.startswith(f"* {a.name} m")]
    private = [l for l in lines if l.startswith(f"[private] <{a.name}> m")]
    # Each hostile line arrives as exactly one line (no split at a bare CR).
    assert len(chat) == len(acts) == len(private) == len(HOSTILE), lines
    assert len(lines) == 3 * len(HOSTILE) + 1, lines
    for i, line in enumerate(chat):
        assert line.startswith(f"<{a.name}> m{i:02d} "), line
    assert "\ufffd" in chat[0] and "carriage return" in chat[0]

    replies = answers.decode().split("\r\n")[:-1]
    refusals = [l for l in replies if l.startswith("! ")]
    assert len(refusals) == len(HOSTILE_NICKS), replies
    assert replies[-1].startswith("- online (2): ") and a.name in replies[-1], replies
    figure("hostile lines checked", 3 * len(HOSTILE) + len(HOSTILE_NICKS))


LOOK_ALIKES = [
    "Alice", "ALICE", "aLiCe", "alicE",  # case variants: taken
    "ali\u200bce", "alice\u200b", "\u200balice", "ali\u200dce", "al\u200cice",
    "\ufeffalice", "alice\u2060", "al\u00adice",  # zero-width and invisible
    "\u0430lice", "al\u0456ce", "alic\u0435", "\u0251lice", "\u03b1lice",
    "\uff41lice", "\uff21\uff2c\uff29\uff23\uff25", "\u1d00lice",
    "ali\u0107e", "alice\u0301", "ALI\u0130CE", "\U0001d41alice",  # confusables
]


def test_nick_look_alikes_refused(make_daemon, figure):
    d = make_daemon("--rate", "0")
    alice, mallory, watcher = AdvClient(d.port), AdvClient(d.port), AdvClient(d.port)
    alice.nick("alice")
    mallory.sync()
    watcher.sync()
    for nick in LOOK_ALIKES:
        mallory.send(f"/nick {nick}\n".encode())
        answer = mallory.line()
        assert answer.startswith("! "), (nick, answer)
        if nick.isascii():
            assert "taken" in answer, (nick, answer)
    for nick in ("SeRvEr", "ADMIN", "***", "<alice>", "-alice", "alice bob"):
        mallory.say(f"/nick {nick}")
        answer = mallory.line()
        assert answer.startswith("! "), (nick, answer)
    who = watcher.sync()
    assert who == [], who  # no rename was announced
    watcher.say("/who")
    online = watcher.line()
    names = online.split(": ", 1)[1].split(", ")
    assert sorted(names) == sorted(["alice", mallory.name, watcher.name]), online
    figure("look-alike nicks refused", len(LOOK_ALIKES) + 6)
    latency = rtt(alice, watcher)
    figure("bystander latency", latency, "s")
    assert latency < FAST
