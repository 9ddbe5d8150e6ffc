"""
Operators against a real daemon: made with ``chatd-admin`` as a user runs
it, then kick, ban by name and by address (refused at connect and at
login), bans across a restart, mute, wall, revocation, and non-operators
refused.
"""

import socket

from daemon import Client
from loopback import admin, make_operator, register

CHEAP = ("--hash-memory", "8K")


def AdvClient(port, source, greet=True):
    """
    A client connecting from ``source`` (another loopback address).
    """
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return Client(port, greet=greet, sock=sock)


def login(client, name, password="secret1"):
    client.say(f"/login {name} {password}")
    return client.expect(lambda l: l.startswith(("*** logged in", "! ")))


def operator(d, name="boss"):
    return make_operator(d, d.client(), name)


def test_chatd_admin_refuses_unknown_accounts_and_bad_usage(make_daemon, tmp_path):
    empty = admin(tmp_path / "nothing", "make-operator", "boss")
    assert empty.returncode == 1 and "no accounts" in empty.stdout
    d = make_daemon(*CHEAP)
    register(d.client(), "someone")
    missing = admin(d.data_dir, "make-operator", "nobody")
    assert missing.returncode == 1
    assert missing.stdout == "chatd-admin: no account called nobody\n"
    bad = admin(d.data_dir)
    assert bad.returncode == 2 and "make-operator" in bad.stderr


def test_non_operators_and_guests_are_refused(make_daemon):
    d = make_daemon(*CHEAP)
    guest, user = d.client(), d.client()
    register(user, "user")
    for c in (guest, user):
        for line in ("/kick x", "/ban x", "/unban x", "/bans", "/mute x",
                     "/unmute x", "/wall hi"):
            c.say(line)
            assert c.expect("! ") == "! operators only", line


def test_kick_tells_everyone_with_the_reason(make_daemon):
    d = make_daemon(*CHEAP)
    boss = operator(d)
    bob, carol = d.client(), d.client()
    bob.nick("bob")
    boss.say("/kick bob flooding")
    assert boss.expect("- kicked") == "- kicked bob"
    assert bob.expect("*** you were") == "*** you were kicked by boss: flooding"
    assert bob.closed()
    assert carol.expect("*** bob left") == "*** bob left (kicked by boss: flooding)"
    boss.say("/kick nobody")
    assert boss.expect("! ") == "! no such user: nobody"
    boss.say("/kick boss")
    assert boss.expect("! ") == "! not on yourself"
    assert "operator" in d.log() and "kicked" in d.log()


def test_ban_by_name_refuses_login_and_lasts_across_restart(make_daemon, tmp_path):
    data = tmp_path / "data"
    d = make_daemon(*CHEAP, data_dir=data)
    boss = operator(d)
    mallory = d.client()
    register(mallory, "mallory")
    watcher = d.client()
    boss.say("/ban mallory 2h spamming links")
    assert boss.expect("- banned") == "- banned mallory for 2h; 1 disconnected"
    assert mallory.expect("*** you were") == \
        "*** you were banned by boss: spamming links"
    assert mallory.closed()
    assert watcher.expect("*** mallory left") == \
        "*** mallory left (banned by boss: spamming links)"
    boss.say("/bans")
    assert boss.expect("- bans") == "- bans (1):"
    assert boss.line() == "- mallory (account) by boss, 2h left: spamming links"
    d.stop()

    d = make_daemon(*CHEAP, data_dir=data)
    again = d.client()
    assert login(again, "mallory") == "! banned from this server (spamming links) for 2h"
    assert again.closed()
    boss = d.client()
    assert login(boss, "boss") == "*** logged in as boss"
    boss.say("/unban mallory")
    assert boss.expect("- unbanned") == "- unbanned mallory"
    boss.say("/unban mallory")
    assert boss.expect("! ") == "! no ban on mallory"
    assert login(d.client(), "mallory") == "*** logged in as mallory"


def test_ban_by_address_refuses_at_connect(make_daemon):
    d = make_daemon(*CHEAP)
    boss = operator(d)  # on 127.0.0.1
    other = AdvClient(d.port, source="127.0.0.2")
    boss.say("/ban 127.0.0.0/8")
    assert boss.expect("! ") == "! 127.0.0.0/8 covers you; not banned"
    boss.say("/ban 127.0.0.2/32 1d")
    assert boss.expect("- banned") == "- banned 127.0.0.2 for 1d; 1 disconnected"
    assert other.expect("*** you were") == "*** you were banned by boss"
    assert other.closed()
    refused = AdvClient(d.port, source="127.0.0.2", greet=False)
    assert refused.line() == "! banned from this server for 1d"
    assert refused.closed()
    d.client()  # 127.0.0.1 still comes in
    boss.say("/unban 127.0.0.2")
    assert boss.expect("- unbanned") == "- unbanned 127.0.0.2"
    AdvClient(d.port, source="127.0.0.2")  # greeted


def test_mute_refuses_lines_but_they_still_read(make_daemon):
    d = make_daemon(*CHEAP)
    boss = operator(d)
    loud, quiet = d.client(), d.client()
    loud.nick("loud")
    boss.say("/mute loud 10m")
    assert boss.expect("- muted") == "- muted loud for 10m"
    assert loud.expect("*** you were muted") == \
        "*** you were muted by boss for 10m; you can still read"
    for line in ("hello", "/me waves", "/msg boss psst", "/topic #lobby shouting"):
        loud.say(line)
        assert loud.expect("! ") == "! you are muted for 10m more; you can still read"
    loud.say("/who")
    assert loud.expect("- online (")
    loud.say("/topic")  # reading a topic is not speaking
    assert loud.expect("- no topic") == "- no topic for #lobby"
    boss.say("still reading?")
    assert loud.expect("<boss>") == "<boss> still reading?"
    boss.say("/unmute loud")
    assert boss.expect("- unmuted") == "- unmuted loud"
    assert loud.expect("*** boss unmuted") == "*** boss unmuted you"
    loud.say("thanks")
    assert quiet.expect("<loud>") == "<loud> thanks"


def test_wall_reaches_everyone_and_is_logged_without_its_text(make_daemon):
    d = make_daemon(*CHEAP)
    boss = operator(d)
    others = [d.client() for _ in range(3)]
    boss.say("/wall restart at noon WALL-TEXT-7")
    for c in others + [boss]:
        assert c.expect("*** notice from") == \
            "*** notice from boss: restart at noon WALL-TEXT-7"
    boss.say("/help operators")
    assert boss.expect("- operator commands") == "- operator commands:"
    assert boss.line().startswith("- /kick NAME [REASON]")
    d.stop()
    log = d.log()
    assert "boss sent a wall notice" in log
    assert "WALL-TEXT-7" not in log


def test_revoked_operator_is_refused_at_once(make_daemon):
    d = make_daemon(*CHEAP)
    boss = operator(d)
    boss.say("/bans")
    assert boss.expect("- bans") == "- bans (0)"
    done = admin(d.data_dir, "revoke-operator", "BOSS")
    assert done.stdout == "boss is no longer an operator\n"
    boss.say("/bans")
    assert boss.expect("! ") == "! operators only"


def test_address_ban_plain_client_after_restart(make_daemon, tmp_path):
    data = tmp_path / "data"
    d = make_daemon(*CHEAP, data_dir=data)
    boss = operator(d)
    boss.say("/ban 127.0.0.3 spam")
    assert boss.expect("- banned") == "- banned 127.0.0.3 forever"
    d.stop()
    d = make_daemon(*CHEAP, data_dir=data)
    refused = AdvClient(d.port, source="127.0.0.3", greet=False)
    assert refused.line() == "! banned from this server (spam)"
    assert refused.closed()
    Client(d.port)  # others still welcome
