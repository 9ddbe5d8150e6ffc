"""
Password guessing and hashing floods against a real daemon with a real
hash cost: parallel guesses stay within the lock-out, a stranger cannot
lock the owner out, and a crowd of registrations neither runs unthrottled
nor starves a real login.
"""

import time

from daemon import wait_until_read
from helpers import AdvClient

LOCKED = ("! too many failed logins", "! too many logins in progress")
WRONG = "! wrong password for alice"


ANSWER = ("! ", "*** logged in as ", "*** registered and logged in as ")


def answer(client, timeout=None):
    """
    The answer to an account command: an error or a login.
    """
    return client.expect(lambda line: line.startswith(ANSWER), timeout)


def answers(clients):
    return [answer(c) for c in clients]


def register_alice(port, source="127.0.0.1"):
    owner = AdvClient(port, source=source, timeout=20)
    owner.say("/register alice secret1")
    assert owner.expect("*** registered") == "*** registered and logged in as alice"
    owner.say("/quit")
    owner.expect("*** bye")
    owner.close()


def guess_at_once(port, sources, password="wrong-guess"):
    """
    One wrong ``/login alice`` per source address, all sent at the same
    moment: the answers.
    """
    guessers = [AdvClient(port, source=source, timeout=20) for source in sources]
    for c in guessers:
        c.send(f"/login alice {password}\n")
    got = answers(guessers)
    for c in guessers:
        c.close()
    return got


def test_parallel_guesses_from_one_address_are_capped(make_daemon, figure):
    d = make_daemon("--hash-memory", "32M")
    register_alice(d.port, source="127.0.0.9")
    got = guess_at_once(d.port, ["127.0.0.1"] * 16)
    checked = [a for a in got if a == WRONG]
    figure("guesses checked of 16 parallel", len(checked))
    assert len(checked) <= 3, got
    assert all(a == WRONG or a.startswith(LOCKED) for a in got), got


def test_parallel_guesses_from_many_addresses_are_capped_per_name(make_daemon, figure):
    d = make_daemon("--hash-memory", "32M")
    register_alice(d.port, source="127.0.0.9")
    got = guess_at_once(d.port, [f"127.0.1.{n}" for n in range(1, 17)])
    checked = [a for a in got if a == WRONG]
    figure("guesses checked of 16 parallel, 16 addresses", len(checked))
    assert len(checked) <= 3, got
    assert all(a == WRONG or a.startswith(tuple(f"{s} for alice" for s in LOCKED))
               for a in got), got


def test_a_stranger_cannot_lock_the_owner_out(make_daemon, figure):
    """
    Strangers from several addresses keep guessing: guessing stays capped
    (3 checks in the window for addresses new to the account, even the
    right password is refused from them), yet the owner, from an address
    that logged in to the account before, gets in.
    """
    d = make_daemon("--hash-memory", "8K")
    register_alice(d.port, source="127.0.0.1")
    strangers = [f"127.0.2.{n}" for n in range(1, 7)]
    got = []
    for _ in range(3):
        got += guess_at_once(d.port, strangers)
    checked = [a for a in got if a == WRONG]
    figure("stranger guesses checked of 18", len(checked))
    assert len(checked) <= 3, got
    assert len(checked) + sum(a.startswith(LOCKED) for a in got) == len(got), got
    # A new address with the right password is still held back...
    assert guess_at_once(d.port, ["127.0.2.99"], "secret1")[0].startswith(
        "! too many failed logins for alice")
    # ...but the owner, at home, gets in.
    owner = AdvClient(d.port, source="127.0.0.1")
    owner.say("/login alice secret1")
    assert answer(owner) == "*** logged in as alice"


def test_invalid_names_are_refused_before_hashing(make_daemon):
    d = make_daemon("--hash-memory", "32M")
    c = AdvClient(d.port, timeout=20)
    for _ in range(20):
        c.say("/login " + "x" * 40 + " secret1")
        assert answer(c) == "! name is longer than 32 characters"
        c.say("/login -dash secret1")
        assert answer(c).startswith("! name may only use")
    # None of them counted as a failed login.
    c.say("/login zed secret1")
    assert answer(c) == "! no account called zed (/register zed PASSWORD makes one)"


def test_registrations_are_limited_per_address(make_daemon):
    d = make_daemon("--hash-memory", "8K")
    c = AdvClient(d.port)
    for n in range(5):
        c.say(f"/register user{n} secret1")
        assert answer(c) == f"*** registered and logged in as user{n}"
    c.say("/register user5 secret1")
    refusal = answer(c)
    assert refusal.startswith("! too many registrations from your address; try again in "), \
        refusal
    other = AdvClient(d.port, source="127.0.0.2")
    other.say("/register user5 secret1")
    assert answer(other) == "*** registered and logged in as user5"


def test_a_registration_flood_does_not_starve_a_login(make_daemon, figure):
    """
    200 /register lines from 200 connections on 40 addresses, at a real
    hash cost (32 MiB argon2id, ~0.07 s): the real user's login is answered
    within 2 s (unthrottled, it waited ~10 s), and registrations past the
    bounded queue are told the server is busy.
    """
    d = make_daemon("--max-conns-per-ip", "0", "--hash-memory", "32M")
    register_alice(d.port, source="127.0.0.9")
    crowd = [AdvClient(d.port, source=f"127.0.3.{n % 40 + 1}", timeout=60)
             for n in range(200)]
    user = AdvClient(d.port, source="127.0.0.9")
    for n, c in enumerate(crowd):
        c.send(f"/register flood{n} secret1\n")
    for c in crowd:  # every registration is in line before the login
        wait_until_read(d.port, c, timeout=30)
    started = time.monotonic()
    user.say("/login alice secret1")
    got = answer(user, timeout=60)
    took = time.monotonic() - started
    figure("login answered during a registration flood", took, "s")
    assert got == "*** logged in as alice"
    assert took < 2.0
    got = answers(crowd)
    busy = [a for a in got if a == "! server busy, try again in a moment"]
    figure("registrations answered busy", len(busy))
    assert busy, "the hashing queue was not bounded"
    assert all(a == "! server busy, try again in a moment" or
               a.startswith("*** registered and logged in as flood") for a in got), \
        set(got)
