"""
Hostile operator commands: malformed targets, durations and arguments get
one clear line each; a non-operator hammering them gets only refusals and
nobody else notices; a mute cannot be slipped by renaming; a ban cannot
lock the operator out; an address ban of a whole network refuses every
address in it.
"""

from helpers import FAST, AdvClient, rtt
from loopback import make_operator

CHEAP = ("--hash-memory", "8K")


def _operator(d, name="boss"):
    return make_operator(d, AdvClient(d.port), name)


def _answer(client, line):
    client.say(line)
    seen = [l for l in client.sync() if not l.startswith("*** ")]  # presence
    assert len(seen) == 1, (line, seen)
    return seen[0]


def test_malformed_operator_commands_each_get_one_clear_line(make_daemon):
    d = make_daemon(*CHEAP, "--rate", "0")
    boss = _operator(d)
    target = AdvClient(d.port)
    target.nick("target")
    cases = {
        "/kick": "! usage: /kick NAME [REASON]",
        "/ban": "! usage: /ban NAME|ADDRESS[/PREFIX] [DURATION] [REASON]",
        "/ban 10.0.0.0/33": "! not an address or network: 10.0.0.0/33",
        "/ban 10.0.0.1/8/8": "! not an address or network: 10.0.0.1/8/8",
        # Not an address but a valid name: banned as one, and said so.
        "/ban 10.0.0.300": "- banned 10.0.0.300 forever; no account is called 10.0.0.300",
        "/ban 1::2::3": "! not an address or network: 1::2::3",
        "/unban 1:2:3": "! no ban on 1:2:3",
        "/ban <evil>": "! ",
        "/ban 0.0.0.0/0": "! 0.0.0.0/0 covers you; not banned",
        "/ban 127.0.0.1": "! 127.0.0.1 covers you; not banned",
        "/ban BOSS": "! BOSS covers you; not banned",
        "/mute target 0m": "! bad duration: 0m (like 90s, 10m, 2h, 7d, 1w)",
        # A mistyped duration is refused, never a ban forever with it as reason.
        "/ban target 10x spam": "! bad duration: 10x (like 90s, 10m, 2h, 7d, 1w)",
        "/ban target 0": "! bad duration: 0 (like 90s, 10m, 2h, 7d, 1w)",
        "/mute target 10m extra words": "! usage: /mute NAME [DURATION]",
        "/mute target -5m": "! usage: /mute NAME [DURATION]",
        "/mute nobody": "! no such user: nobody",
        "/unmute target": "! target is not muted",
        "/unban": "! usage: /unban NAME|ADDRESS[/PREFIX]",
        "/unban 10.9.9.9": "! no ban on 10.9.9.9",
        "/wall": "! usage: /wall TEXT",
        "/kick " + "x" * 3000: "! no such user: ",
    }
    for line, answer in cases.items():
        got = _answer(boss, line)
        assert got.startswith(answer), (line, got)
    # A huge duration is capped, not an overflow; the ban is on a name.
    assert _answer(boss, "/ban someone 99999999999999999999d") == \
        "- banned someone for 5215w; no account is called someone: only an " \
        "address ban keeps a guest out"
    assert d.proc.poll() is None


def test_a_non_operator_hammering_operator_commands_harms_nobody(make_daemon, figure):
    d = make_daemon(*CHEAP, "--rate", "0")
    user, b, c = AdvClient(d.port), AdvClient(d.port), AdvClient(d.port)
    user.say("/register pest secret1")
    user.expect("*** registered")
    user.send("".join(f"/ban {b.name} 1h\n/kick {c.name}\n/wall hi\n" for _ in range(300)))
    latency = rtt(b, c)
    figure("bystander latency while 900 operator commands are refused", latency, "s")
    assert latency < FAST
    refused = 0
    while refused < 900:
        line = user.line(10)
        assert line == "! operators only" or line.startswith(("*** ", "<")), line
        refused += line == "! operators only"
    assert user.sync() == []
    c.say("still here")
    assert b.expect(f"<{c.name}>") == f"<{c.name}> still here"


def test_a_ban_by_name_removes_the_guest_going_by_it(make_daemon):
    d = make_daemon(*CHEAP)
    boss = _operator(d)
    pest = AdvClient(d.port)
    pest.nick("pest")
    answer = _answer(boss, "/ban pest 1h")
    assert answer.startswith("- banned pest for 1h; 1 disconnected; no account")
    assert pest.expect("*** you were banned") == "*** you were banned by boss"
    assert pest.closed()


def test_a_muted_guest_cannot_speak_by_renaming(make_daemon):
    d = make_daemon(*CHEAP)
    boss = _operator(d)
    pest = AdvClient(d.port)
    pest.nick("pest")
    assert _answer(boss, "/mute pest").startswith("- muted pest forever")
    pest.nick("innocent")
    pest.say("hello")
    assert pest.expect("! ") == "! you are muted; you can still read"
    pest.say("//also slashed")
    assert pest.expect("! ") == "! you are muted; you can still read"


def test_a_muted_user_leaves_without_a_word(make_daemon):
    """
    /part and /quit still work for a muted user, but their REASON, which
    others would read, is dropped: leaving is not a way to speak.
    """
    d = make_daemon(*CHEAP)
    boss = _operator(d)
    pest = AdvClient(d.port)
    pest.nick("pest")
    assert _answer(boss, "/mute pest").startswith("- muted pest forever")
    for c in (boss, pest):
        c.say("/join #r")
        c.expect("*** you are in #r")
    pest.say("/part #r buy cheap stuff")
    assert boss.expect("*** pest left #r") == "*** pest left #r"
    pest.say("/quit more spam")
    assert boss.expect("*** pest left") == "*** pest left"


def test_a_network_ban_refuses_every_address_in_it(make_daemon):
    d = make_daemon(*CHEAP)
    boss = _operator(d)
    inside = [AdvClient(d.port, source=f"127.0.1.{i}") for i in (1, 2, 3)]
    outside = AdvClient(d.port, source="127.0.2.1")
    answer = _answer(boss, "/ban 127.0.1.0/24 1h range abuse")
    assert answer == "- banned 127.0.1.0/24 for 1h; 3 disconnected"
    for c in inside:
        assert c.expect("*** you were banned") == "*** you were banned by boss: range abuse"
        assert c.closed()
    for source in ("127.0.1.1", "127.0.1.200"):
        refused = AdvClient(d.port, source=source, greet=False)
        assert refused.line() == "! banned from this server (range abuse) for 1h"
        assert refused.closed()
    outside.say("/who")
    assert outside.expect("- online (").startswith("- online (2)")
