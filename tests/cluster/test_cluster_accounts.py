"""
Accounts and lock-outs shared across nodes: real ``twistd`` nodes over a
real ``redis-server``, loopback clients.
"""

import subprocess
import threading

from cluster_helpers import settle
from daemon import Client
from loopback import ADMIN, register

CHEAP = ("--hash-memory", "8K")


def with_alice(redis, make_node):
    """
    Two nodes, and alice registered on the first.
    """
    a, b = make_node(redis, *CHEAP), make_node(redis, *CHEAP)
    alice = a.client()
    register(alice, "alice")
    return a, b, alice


def registered_and_gone(redis, make_node):
    """
    Two nodes, after alice registered on the first and quit.
    """
    a, b, alice = with_alice(redis, make_node)
    watcher = b.client()
    alice.say("/quit")
    alice.expect("*** bye")
    # The bus is asynchronous: b has heard of the account once it has
    # heard of alice leaving (each node's messages arrive in order).
    watcher.expect("*** alice left")
    return a, b


def test_register_on_one_node_log_in_on_another(redis, make_node, tmp_path):
    a, b = registered_and_gone(redis, make_node)
    again = b.client()
    again.say("/login Alice secret1")
    assert again.expect("*** logged in") == "*** logged in as alice"
    assert redis.cli("HGET", "chatd:0:account:alice", "name") == "alice"
    # Each node keeps no accounts of its own.
    assert not list(tmp_path.rglob("accounts.sqlite3"))
    for node in (a, b):
        assert "secret1" not in node.log()


def test_password_change_on_one_node_holds_on_another(redis, make_node):
    a, b, alice = with_alice(redis, make_node)
    alice.say("/password secret1 better22")
    assert alice.expect("*** password") == "*** password changed"
    late = b.client()
    late.say("/login alice secret1")
    assert late.expect("!") == "! wrong password for alice"
    late.say("/login alice better22")
    assert late.expect("*** logged in") == "*** logged in as alice"


def test_wrong_passwords_on_alternating_nodes_lock_out_as_on_one(redis, make_node):
    a, b = make_node(redis, *CHEAP), make_node(redis, *CHEAP)
    register(a.client(), "alice")
    # From another address than the owner's, switching node at each guess.
    guessers = [Client(n.port, source="127.0.0.2") for n in (a, b)]
    for i, guess in enumerate(("guess-one", "guess-two", "guess-three")):
        guessers[i % 2].say(f"/login alice {guess}")
        assert guessers[i % 2].expect("!") == "! wrong password for alice"
    for g in guessers:  # the fourth, on either node, is refused
        g.say("/login alice secret1")
        assert g.expect("!").startswith("! too many failed logins for alice; try again in ")
    # The address is locked out on every node too, for any name.
    for node in (a, b):
        other = Client(node.port, source="127.0.0.2")
        other.say("/login zed whatever1")
        assert other.expect("!").startswith("! too many failed logins from your address")
    # The owner's own address is not held by the name's lock.
    owner = b.client()
    owner.say("/login alice secret1")
    assert owner.expect("*** logged in") == "*** logged in as alice"


def test_login_on_one_node_closes_the_session_on_another(redis, make_node):
    a, b, c = (make_node(redis, *CHEAP) for _ in range(3))
    old, watcher, elsewhere = a.client(), a.client(), c.client()
    register(old, "alice")
    new = b.client()
    guest = new.name
    settle([old, watcher, elsewhere, new])
    new.say("/login alice secret1")
    assert new.expect("*** logged") == "*** logged in as alice"
    new.name = "alice"
    assert old.expect(lambda l: "another connection" in l) == \
        "*** alice logged in from another connection; closing this one"
    assert old.closed()
    # Everyone sees what one node shows: the old session goes, then the
    # new one takes the name.
    for seer in (watcher, elsewhere):
        assert seer.lines_until(lambda l: "is now known as alice" in l) == [
            "*** alice left (logged in elsewhere)", f"*** {guest} is now known as alice"]
    settle([watcher, new, elsewhere])  # alice is listed once, on the node she is on
    new.say("still me")
    assert watcher.expect("<alice>") == elsewhere.expect("<alice>") == "<alice> still me"


def test_two_nodes_racing_to_register_one_name_one_wins(redis, make_node):
    nodes = [make_node(redis, *CHEAP) for _ in range(2)]
    clients = [n.client() for n in nodes for _ in range(3)]
    barrier = threading.Barrier(len(clients))
    answers = {}

    def race(c):
        barrier.wait()
        c.say("/register winner secret1")
        answers[c] = c.expect(lambda l: l.startswith(("! ", "*** registered")))

    threads = [threading.Thread(target=race, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    won = [a for a in answers.values() if a.startswith("*** registered")]
    assert len(answers) == len(clients) and won == ["*** registered and logged in as winner"]
    for answer in answers.values():
        assert answer in won or answer.startswith("! winner is already registered"), answer
    assert redis.cli("SMEMBERS", "chatd:0:accounts") == "winner"


def test_a_registered_name_is_protected_on_every_node(redis, make_node):
    a, b = registered_and_gone(redis, make_node)
    bob = b.client()
    bob.say("/nick alice")
    assert bob.expect("!") == "! alice is a registered name (/login alice PASSWORD if it is yours)"
    bob.say("/register ALICE secret2")
    assert bob.expect("!") == "! ALICE is already registered (/login ALICE PASSWORD if it is yours)"
    # A node started later loads the accounts made before it joined.
    c = make_node(redis, *CHEAP)
    carol = c.client()
    carol.say("/nick alice")
    assert carol.expect("!").startswith("! alice is a registered name")


def test_registering_a_name_a_guest_holds_on_another_node_moves_it_aside(redis, make_node):
    a, b = make_node(redis, *CHEAP), make_node(redis, *CHEAP)
    alice, holder = a.client(), b.client()
    holder.nick("alice")
    alice.say("/register alice secret1")
    assert alice.expect("*** registered") == "*** registered and logged in as alice"
    notice = holder.expect(lambda l: "registered name" in l)
    assert notice.startswith("*** alice is a registered name and its owner logged in; "
                             "you are now guest")


def test_operators_made_with_chatd_admin_redis(redis, make_node):
    a, b, alice = with_alice(redis, make_node)
    alice.say("/wall hello")
    assert alice.expect("!") == "! operators only"
    made = admin("make-operator", "Alice", redis=redis)
    assert (made.returncode, made.stdout) == (0, "alice is now an operator\n")
    alice.say("/wall hello")  # asked of Redis at each operator command
    assert alice.expect(lambda l: "hello" in l) == "*** notice from alice: hello"
    on_b = b.client()  # and on every node
    on_b.say("/login alice secret1")
    on_b.expect("*** logged in")
    on_b.say("/wall hi")
    assert on_b.expect(lambda l: "hi" in l) == "*** notice from alice: hi"
    missing = admin("make-operator", "nobody", redis=redis)
    assert (missing.returncode, missing.stdout) == (1, "chatd-admin: no account called nobody\n")
    revoked = admin("revoke-operator", "alice", redis=redis)
    assert revoked.stdout == "alice is no longer an operator\n"
    on_b.say("/wall again")
    assert on_b.expect("!") == "! operators only"


def admin(*args, redis):
    return subprocess.run([ADMIN, "--redis", redis.url, *args],
                          capture_output=True, text=True, timeout=30)
