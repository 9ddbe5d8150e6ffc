"""
Accounts against a real daemon: register, log in elsewhere, lock-out,
reserved names, --require-login, password changes, restarts, and chat that
keeps flowing while 20 logins hash in the daemon's threads.
"""

import threading
import time

import pytest

from daemon import Client

CHEAP = ("--hash-memory", "8K")


def register(client, name, password="secret1"):
    client.say(f"/register {name} {password}")
    assert client.expect("*** registered") == f"*** registered and logged in as {name}"
    client.name = name


def test_register_then_login_from_another_connection(make_daemon):
    d = make_daemon(*CHEAP)
    alice, bob = d.client(), d.client()
    guest = alice.name
    register(alice, "alice")
    assert bob.expect(f"*** {guest} is") == f"*** {guest} is now known as alice"
    alice.say("hello")
    assert bob.line() == "<alice> hello"
    alice.say("/quit")
    assert alice.expect("*** bye") == "*** bye"
    again = d.client()
    again.say("/login Alice secret1")
    assert again.expect("*** logged in") == "*** logged in as alice"
    again.say("/who")
    assert "alice" in again.expect("- online")
    # Passwords are never echoed, relayed or logged.
    assert "secret1" not in d.log()


def test_login_keeps_line_order(make_daemon):
    d = make_daemon(*CHEAP)
    alice, bob = d.client(), d.client()
    register(alice, "alice")
    alice.say("/quit")
    carol = d.client()
    bob.expect(f"*** {carol.name} joined")
    carol.send("/login alice secret1\nfirst words\n")
    assert bob.expect(f"*** {carol.name} is") == f"*** {carol.name} is now known as alice"
    assert bob.line() == "<alice> first words"


def test_registered_name_is_reserved_and_claimed_from_a_guest(make_daemon):
    d = make_daemon(*CHEAP)
    alice, bob = d.client(), d.client()
    bob.nick("alice")  # a guest holds the name before it is registered
    alice.say("/register alice secret1")
    guest_notice = bob.expect(lambda l: "registered name" in l)
    assert guest_notice.startswith("*** alice is a registered name and its owner "
                                   "logged in; you are now guest")
    assert alice.expect("*** registered") == "*** registered and logged in as alice"
    bob.say("/nick ALICE")
    assert bob.expect("!") == "! ALICE is a registered name (/login ALICE PASSWORD if it is yours)"
    alice.say("/nick other")
    assert alice.expect("!").startswith("! you are logged in as alice")
    alice.say("/register bob2 x")
    assert alice.expect("!") == "! password must be at least 6 characters"


def test_wrong_passwords_lock_out_the_name(make_daemon):
    d = make_daemon(*CHEAP)
    alice = d.client()
    register(alice, "alice")
    # From another address: the owner's (known to the account) is not
    # held by the name's lock.
    mallory, other = (Client(d.port, source="127.0.0.2") for _ in range(2))
    for guess in ("guess-one", "guess-two", "guess-three"):
        mallory.say(f"/login alice {guess}")
        assert mallory.expect("!") == "! wrong password for alice"
    mallory.say("/login alice secret1")
    refusal = mallory.expect("!")
    assert refusal.startswith("! too many failed logins for alice; try again in ")
    # The address is locked out too, for any name.
    other.say("/login zed whatever1")
    assert other.expect("!").startswith("! too many failed logins")
    log = d.log()
    for word in ("guess-one", "guess-two", "guess-three", "secret1"):
        assert word not in log
    alice.say("still here")
    assert mallory.expect("<") == "<alice> still here"


def test_password_change_and_restart_keep_accounts(make_daemon, tmp_path):
    data = tmp_path / "kept"
    d = make_daemon(*CHEAP, data_dir=data)
    alice = d.client()
    alice.say("/password secret1 better22")
    assert alice.expect("!").startswith("! log in first")
    register(alice, "alice")
    alice.say("/password wrong-old better22")
    assert alice.expect("!") == "! wrong password for alice"
    alice.say("/password secret1 better22")
    assert alice.expect("*** password") == "*** password changed"
    alice.close()
    d.stop()
    d2 = make_daemon(*CHEAP, data_dir=data)
    bob = d2.client()
    bob.nick("bob")
    bob.say("/nick alice")
    assert bob.expect("!").startswith("! alice is a registered name")
    bob.say("/login alice better22")
    assert bob.expect("*** logged") == "*** logged in as alice"
    assert (data / "accounts.sqlite3").exists()


def test_login_elsewhere_closes_the_old_session(make_daemon):
    d = make_daemon(*CHEAP)
    old, watcher = d.client(), d.client()
    register(old, "alice")
    new = d.client()
    new.say("/login alice secret1")
    assert new.expect("*** logged") == "*** logged in as alice"
    assert old.expect(lambda l: "another connection" in l) == \
        "*** alice logged in from another connection; closing this one"
    assert old.closed()
    assert watcher.expect("*** alice left") == "*** alice left (logged in elsewhere)"


def test_require_login(make_daemon):
    d = make_daemon(*CHEAP, "--require-login")
    first = Client(d.port, greet=False)
    greeting = first.line()
    assert greeting.startswith("*** Welcome to ")
    assert ("log in first: /login NAME PASSWORD (or /register NAME PASSWORD); "
            "type /help for commands") in greeting
    first.say("hello?")
    assert first.line() == "! log in first: /login NAME PASSWORD (or /register NAME PASSWORD)"
    first.say("/who")
    assert first.line().startswith("! log in first")
    first.say("/help accounts")
    assert first.line() == "- account commands:"
    first.say("/register alice secret1")
    assert first.expect("*** registered") == "*** registered and logged in as alice"
    lurker = Client(d.port, greet=False)
    lurker.line()
    first.say("only for members")
    lurker.nothing(0.3)  # not logged in: not in the room
    first.say("/who")
    assert first.expect("- online") == "- online (1): alice"
    lurker.say("/quit")
    assert lurker.expect("*** bye") == "*** bye"
    closed = make_daemon(*CHEAP, "--require-login", "--no-register")
    c = Client(closed.port, greet=False)
    assert c.line().endswith("log in first: /login NAME PASSWORD; type /help for commands")
    c.say("/register bob secret1")
    assert c.line() == "! registration is closed on this server"


def test_twenty_parallel_logins_do_not_stall_chat(make_daemon):
    """
    A real hash cost (32 MiB argon2id): while 20 registrations and then 20
    logins (from 20 addresses: one address has 3 at a time) hash in the
    daemon's threads, a bystander's chat round trip stays short.
    """
    d = make_daemon("--max-conns-per-ip", "0", "--rate", "0", "--hash-memory", "32M")
    carol, dave = d.client(), d.client()

    def connect(n):
        return Client(d.port, timeout=30, source=f"127.0.4.{n + 1}")

    users = [connect(n) for n in range(20)]
    worst = []
    stop = threading.Event()

    def ping():
        i = 0
        while not stop.is_set():
            start = time.monotonic()
            carol.say(f"ping {i}")
            dave.expect(f"<{carol.name}> ping {i}")
            worst.append(time.monotonic() - start)
            i += 1
            time.sleep(0.02)

    def in_parallel(command, reply):
        for n, user in enumerate(users):
            user.say(command.format(n=n))
        started = time.monotonic()
        for user in users:
            assert user.expect(reply).startswith(reply)
        return time.monotonic() - started

    pinger = threading.Thread(target=ping)
    pinger.start()
    try:
        took = in_parallel("/register user{n} secret{n}x", "*** registered and logged in")
        for user in users:
            user.say("/quit")
        users[:] = [connect(n) for n in range(20)]
        took += in_parallel("/login user{n} secret{n}x", "*** logged in as user")
    finally:
        stop.set()
        pinger.join()
    print(f"hashing took {took:.2f} s; worst round trip {max(worst):.3f} s")
    assert took > 0.3, "the hashing was too fast to show anything"
    assert len(worst) > 10
    assert max(worst) < 0.25, f"chat stalled: worst round trip {max(worst):.3f} s"
