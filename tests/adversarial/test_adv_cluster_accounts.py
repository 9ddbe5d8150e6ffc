"""
Hostile cases of the cluster's accounts: records in Redis no node wrote,
junk account keys, forged and malformed ``account`` messages on the bus,
a Redis that goes away mid-chat, hostile names.  Each gets a clear one-line
answer (never a traceback), and the nodes keep working.
"""

import json
import subprocess

import pytest

from daemon import Client
from loopback import ADMIN, register
from redis_server import make_node, own_redis, redis, session_redis, wait_for  # noqa: F401

CHEAP = ("--hash-memory", "8K")
LOBBY = "chatd:0:room:lobby"
FORGED_NODE = "deadbeefdeadbeef"
REPAIR = "! an account record cannot be read; an operator must repair it"


def no_traceback(*nodes):
    for node in nodes:
        assert node.proc.poll() is None
        assert "Traceback" not in node.log()


@pytest.mark.parametrize("record, answer", [
    # a string where a hash belongs
    ([b"SET", b"chatd:0:account:mallory", b"junk"], REPAIR),
    # a name that is not its key's
    ([b"HSET", b"chatd:0:account:mallory", b"name", b"trent", b"hash", b"$argon2id$x"],
     "! the account mallory cannot be read; an operator must repair it"),
    # no hash
    ([b"HSET", b"chatd:0:account:mallory", b"name", b"mallory"],
     "! the account mallory cannot be read; an operator must repair it"),
    # a name that is not UTF-8
    ([b"HSET", b"chatd:0:account:mallory", b"name", b"\xff\xfe", b"hash", b"$argon2id$x"],
     "! the account mallory cannot be read; an operator must repair it"),
    # a hash that is no argon2 hash: no password matches it
    ([b"HSET", b"chatd:0:account:mallory", b"name", b"mallory", b"hash", b"plain text"],
     "! wrong password for mallory"),
    # known addresses that are not a sorted set
    ([b"SET", b"chatd:0:account:mallory:known", b"junk"], REPAIR),
    # a lock-out that is not a sorted set
    ([b"SET", b"chatd:0:lock:name:mallory:failed", b"junk"], REPAIR),
])
def test_junk_account_records_are_refused_cleanly(redis, make_node, record, answer):
    redis.command(*record)
    redis.command("SADD", "chatd:0:accounts", "mallory")
    a, b = make_node(redis, *CHEAP), make_node(redis, *CHEAP)
    eve, watcher = b.client(), a.client()
    eve.say("/login mallory secret1")
    assert eve.expect("!") == answer
    # The connection and both nodes carry on.
    eve.say("still here")
    assert watcher.expect("<") == f"<{eve.name}> still here"
    no_traceback(a, b)


def test_junk_account_keys_are_skipped_at_load(redis, make_node):
    for junk in (b"Not A Key", b"guest 7", b"\xff\xfe", b"x" * 200, b"BOB"):
        redis.command("SADD", "chatd:0:accounts", junk)
    redis.command("SADD", "chatd:0:accounts", "alice")
    node = make_node(redis, *CHEAP)
    wait_for(lambda: "accounts known from redis" in node.log(), "the accounts loaded")
    assert node.log().count("skipped a malformed account key") == 5
    bob = node.client()
    bob.say("/nick alice")
    assert bob.expect("!").startswith("! alice is a registered name")
    bob.nick("bob")  # "BOB" is no name key: not reserved
    no_traceback(node)


@pytest.mark.parametrize("message", [
    {"v": 2, "node": FORGED_NODE, "kind": "account"},
    {"v": 2, "node": FORGED_NODE, "kind": "account", "name": "eve> x"},
    {"v": 2, "node": FORGED_NODE, "kind": "account", "name": ["eve"]},
    {"v": 2, "node": FORGED_NODE, "kind": "account", "name": "eve", "hash": "x"},
])
def test_malformed_account_messages_are_logged_and_skipped(redis, make_node, message):
    node = make_node(redis, *CHEAP)
    assert redis.command("PUBLISH", LOBBY, json.dumps(message)) == b":1"
    wait_for(lambda: "skipped a malformed message" in node.log(), "the message skipped")
    eve = node.client()
    eve.nick("eve")  # nothing was reserved
    no_traceback(node)


def test_redis_gone_accounts_answer_clearly_and_chat_goes_on(own_redis, make_node):
    a = make_node(own_redis, *CHEAP)
    alice = a.client()
    register(alice, "alice")
    bob, carol = a.client(), a.client()
    own_redis.stop()
    bob.expect("*** cluster link lost")
    for line in ("/login alice secret1", "/register carol secret1"):
        bob.say(line)
        assert bob.expect("!") == "! the cluster link is down; try again in a moment"
    alice.say("/password secret1 better22")
    assert alice.expect("!") == "! the cluster link is down; try again in a moment"
    alice.say("/wall hi")  # an operator check asks Redis too
    assert alice.expect("!") == "! the cluster link is down; try again in a moment"
    bob.say("still chatting")
    assert carol.expect("<") == f"<{bob.name}> still chatting"
    assert "secret1" not in a.log() and "better22" not in a.log()
    no_traceback(a)


@pytest.mark.parametrize("line, answer", [
    ("/register guest12 secret1", "! guest names cannot be registered: guest12"),
    ("/register x" + "y" * 40 + " secret1", "! name is longer than 32 characters"),
    ("/register eve short", "! password must be at least 6 characters"),
    ("/login eve> secret1", "! name may only use letters, digits and _ - . [ ] { } | ^ "
                            "(and must not start with punctuation)"),
])
def test_hostile_account_commands_never_reach_redis(redis, make_node, line, answer):
    node = make_node(redis, *CHEAP)
    eve = Client(node.port)
    eve.say(line)
    assert eve.expect("!") == answer
    assert redis.cli("KEYS", "chatd:0:account*") == ""
    no_traceback(node)


def test_chatd_admin_redis_refusals_are_one_line(redis):
    from daemon import free_port

    nobody = subprocess.run([ADMIN, "--redis", f"redis://127.0.0.1:{free_port()}/0",
                             "make-operator", "alice"], capture_output=True, text=True,
                            timeout=60)
    assert nobody.returncode == 1 and nobody.stdout.startswith("chatd-admin: redis at ")
    redis.command("SET", "chatd:0:account:alice", "junk")
    junk = subprocess.run([ADMIN, "--redis", redis.url, "make-operator", "alice"],
                          capture_output=True, text=True, timeout=60)
    assert junk.returncode == 1 and "WRONGTYPE" in junk.stdout
    for done in (nobody, junk):
        assert len(done.stdout.splitlines()) == 1 and "Traceback" not in done.stderr
    bad = subprocess.run([ADMIN, "--redis", "redis://h/x", "make-operator", "alice"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "database must be a number" in bad.stderr


def test_a_login_whose_old_node_is_dead_still_goes_through(redis, make_node):
    a, b = make_node(redis, *CHEAP), make_node(redis, *CHEAP)
    watcher, alice = b.client(), a.client()
    register(alice, "alice")
    # Her rename reached b: its directory has her on a.
    watcher.expect(lambda l: l.endswith("is now known as alice"))
    a.kill9()
    new = b.client()
    new.say("/login alice secret1")  # a never lets go: the login waits, then takes it
    assert new.expect("*** logged", timeout=10) == "*** logged in as alice"
    watcher.say("/msg alice are you there")
    assert new.expect("[private]") == f"[private] <{watcher.name}> are you there"
    no_traceback(b)


def test_a_damaged_accounts_set_refuses_registration_cleanly(redis, make_node):
    redis.command("SET", "chatd:0:accounts", "junk")
    node = make_node(redis, *CHEAP)
    wait_for(lambda: "account names not loaded" in node.log(), "the load refused")
    eve = node.client()
    eve.say("/register eve secret1")
    assert eve.expect("!") == REPAIR
    assert redis.cli("EXISTS", "chatd:0:account:eve") == "0"  # nothing half-made
    eve.nick("eve")  # the node still works
    no_traceback(node)
