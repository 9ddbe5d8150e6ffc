"""
Units of chatd.accounts: stores, hasher, the cred checker and realm behind a
portal, the brute-force and registration limiters (task.Clock), the hashing
queue, and the Accounts facade with a synchronous runner.
"""

import pytest
from twisted.cred import credentials, error
from twisted.internet import defer, task

from chatd.accounts import (
    Account, AccountChecker, AccountExists, Accounts, ChatRealm, Hasher,
    HashQueue, IChatAccount, LoginLimiter, MemoryAccountStore, RegisterLimiter,
    SQLiteAccountStore,
)
from chatd.grammar import ChatError

CHEAP = dict(memory_kib=8, time_cost=1)


def sync(f, *args):
    return defer.maybeDeferred(f, *args)


def result_of(d):
    results = []
    d.addBoth(results.append)
    assert results, "deferred did not fire"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


@pytest.fixture
def hasher():
    return Hasher(**CHEAP)


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    if request.param == "memory":
        s = MemoryAccountStore()
    else:
        s = SQLiteAccountStore.in_directory(str(tmp_path / "data"))
    yield s
    s.close()


def test_store_create_get_and_set(store):
    assert not store.registered("alice")
    store.create("Alice", "h1")
    assert store.registered("alice")
    assert store.get("alice") == ("Alice", "h1")
    with pytest.raises(AccountExists):
        store.create("ALICE", "h2")
    store.set_hash("alice", "h3")
    assert store.get("alice") == ("Alice", "h3")
    assert store.get("bob") is None


def test_sqlite_store_survives_reopening(tmp_path):
    s = SQLiteAccountStore.in_directory(str(tmp_path))
    s.create("alice", "h")
    s.close()
    again = SQLiteAccountStore.in_directory(str(tmp_path))
    assert again.registered("alice")
    assert again.get("alice") == ("alice", "h")
    again.close()
    assert (tmp_path / "accounts.sqlite3").exists()


def test_store_remembers_the_latest_known_addresses(store):
    store.create("alice", "h")
    assert not store.known("alice", "10.0.0.1")
    for n in range(10):
        store.remember("alice", f"10.0.0.{n}")
    store.remember("alice", "10.0.0.2")  # seen again: most recent
    known = [n for n in range(10) if store.known("alice", f"10.0.0.{n}")]
    assert known == [2, 3, 4, 5, 6, 7, 8, 9]  # the 8 most recent
    assert not store.known("bob", "10.0.0.9")


def test_sqlite_store_keeps_known_addresses(tmp_path):
    s = SQLiteAccountStore.in_directory(str(tmp_path))
    s.create("alice", "h")
    for n in range(10):
        s.remember("alice", f"10.0.0.{n}")
    s.close()
    again = SQLiteAccountStore.in_directory(str(tmp_path))
    assert [n for n in range(10) if again.known("alice", f"10.0.0.{n}")] == list(range(2, 10))
    again.close()


def test_hasher_is_argon2id_and_handles_long_passwords(hasher):
    h = hasher.hash("x" * 200 + "a")
    assert h.startswith("$argon2id$")
    assert hasher.verify(h, "x" * 200 + "a")
    assert not hasher.verify(h, "x" * 200 + "b")
    assert not hasher.verify("garbage", "anything")


def test_checker_and_realm_through_a_portal(store, hasher):
    from twisted.cred.portal import Portal

    store.create("Alice", hasher.hash("secret1"))
    p = Portal(ChatRealm(), [AccountChecker(store, hasher, sync)])
    iface, avatar, logout = result_of(
        p.login(credentials.UsernamePassword("alice", "secret1"), None, IChatAccount))
    assert iface is IChatAccount and avatar == Account("Alice")
    logout()
    for name, password in (("alice", "wrong"), ("nobody", "secret1")):
        with pytest.raises(error.UnauthorizedLogin):
            result_of(p.login(credentials.UsernamePassword(name, password),
                              None, IChatAccount))


def test_checker_rehashes_weaker_hashes(store):
    weak = Hasher(**CHEAP)
    store.create("alice", weak.hash("secret1"))
    stronger = Hasher(memory_kib=16, time_cost=2)
    checker = AccountChecker(store, stronger, sync)
    assert result_of(checker.requestAvatarId(
        credentials.UsernamePassword("alice", "secret1"))) == "alice"
    assert not stronger.needs_rehash(store.get("alice")[1])


def refusal(limiter, name, address):
    """
    Why an attempt now is refused, or ``None`` (then it fails at once).
    """
    try:
        token = limiter.begin(name, address)
    except ChatError as e:
        return e.message
    limiter.end(token, failed=True)
    return None


def test_limiter_locks_out_a_name_then_lets_it_go():
    clock = task.Clock()
    limiter = LoginLimiter(clock)
    for address in ("a1", "a2", "a3"):
        assert refusal(limiter, "alice", address) is None
        clock.advance(10)
    assert refusal(limiter, "alice", "a4") == \
        "too many failed logins for alice; try again in 30 s"
    assert refusal(limiter, "bob", "a5") is None
    clock.advance(29)
    assert refusal(limiter, "alice", "a6") is not None
    clock.advance(1)
    assert refusal(limiter, "alice", "a7") is None


def test_limiter_locks_out_an_address_across_names():
    clock = task.Clock()
    limiter = LoginLimiter(clock)
    for name in ("n1", "n2", "n3"):
        assert refusal(limiter, name, "10.0.0.1") is None
    assert "from your address" in refusal(limiter, "n4", "10.0.0.1")
    assert refusal(limiter, "n4", "10.0.0.2") is None
    clock.advance(60)
    assert refusal(limiter, "n5", "10.0.0.1") is None


def test_limiter_counts_attempts_in_flight():
    clock = task.Clock()
    limiter = LoginLimiter(clock)
    tokens = [limiter.begin("alice", f"a{n}") for n in range(3)]
    with pytest.raises(ChatError, match="too many logins in progress for alice; "
                                        "try again in a moment"):
        limiter.begin("alice", "a9")
    limiter.end(tokens.pop(), failed=False)  # a success gives its place back
    tokens.append(limiter.begin("alice", "a9"))
    for token in tokens:
        limiter.end(token, failed=True)
    clock.advance(30)
    assert refusal(limiter, "alice", "b1") == \
        "too many failed logins for alice; try again in 30 s"


def test_limiter_lets_a_known_address_past_the_name_lock():
    clock = task.Clock()
    limiter = LoginLimiter(clock)
    for n in range(3):
        assert refusal(limiter, "alice", f"stranger{n}") is None
    with pytest.raises(ChatError, match="for alice"):
        limiter.begin("alice", "stranger9")
    token = limiter.begin("alice", "home", known=True)
    limiter.end(token, failed=True)
    # ...but the known address keeps its own per-address limit.
    for _ in range(2):
        limiter.end(limiter.begin("alice", "home", known=True), failed=True)
    with pytest.raises(ChatError, match="from your address"):
        limiter.begin("alice", "home", known=True)


def test_registrations_are_limited_per_address():
    clock = task.Clock()
    limiter = RegisterLimiter(clock)
    busy = limiter.begin("ip")
    limiter.end(busy, hashed=False)  # refused as busy: does not count
    for _ in range(5):
        limiter.end(limiter.begin("ip"), hashed=True)
        clock.advance(1)
    with pytest.raises(ChatError, match="too many registrations from your address; "
                                        "try again in 55 s"):
        limiter.begin("ip")
    limiter.end(limiter.begin("other-ip"), hashed=True)
    clock.advance(55)
    limiter.end(limiter.begin("ip"), hashed=True)


def test_hash_queue_serves_logins_first_and_bounds_each_lane():
    started = []

    def start(f, *args):
        started.append((f, defer.Deferred()))
        return started[-1][1]

    queue = HashQueue(start, threads=2, bounds=(2, 1))
    results = []
    for lane, job in ((1, "r1"), (1, "r2"), (1, "r3"), (0, "l1"), (0, "l2")):
        queue.submit(lane, job).addBoth(results.append)
    assert [f for f, _ in started] == ["r1", "r2"]  # two threads busy
    # r3 waits in the register lane (bound 1); l1 and l2 fill the login lane.
    for lane, job in ((1, "r4"), (0, "l3")):
        queue.submit(lane, job).addBoth(results.append)
    assert [r.value.message for r in results] == ["server busy, try again in a moment"] * 2
    del results[:]
    started[0][1].callback("r1 done")
    assert [f for f, _ in started] == ["r1", "r2", "l1"]  # a login goes first
    started[1][1].callback("r2 done")
    started[2][1].callback("l1 done")
    assert [f for f, _ in started] == ["r1", "r2", "l1", "l2", "r3"]
    assert results == ["r1 done", "r2 done", "l1 done"]
    assert queue.running == 2


def make_accounts(**kw):
    clock = task.Clock()
    accounts = Accounts(MemoryAccountStore(), Hasher(**CHEAP), sync, clock, **kw)
    return accounts, clock


def test_register_login_and_change_password():
    accounts, clock = make_accounts()
    assert result_of(accounts.register("Alice", "secret1")) == "Alice"
    assert accounts.registered("ALICE")
    assert result_of(accounts.login("alice", "secret1", "ip")) == "Alice"
    with pytest.raises(ChatError, match="wrong password for alice"):
        result_of(accounts.login("alice", "nope", "ip"))
    with pytest.raises(ChatError, match="no account called zed"):
        result_of(accounts.login("zed", "secret1", "ip2"))
    result_of(accounts.change_password("Alice", "secret1", "better2", "ip3"))
    with pytest.raises(ChatError):
        result_of(accounts.login("alice", "secret1", "ip3"))
    assert result_of(accounts.login("alice", "better2", "ip3")) == "Alice"


@pytest.mark.parametrize("name, password, message", [
    ("Alice", "secret1", "already registered"),
    ("guest7", "secret1", "guest names cannot be registered"),
    ("admin", "secret1", "reserved"),
    ("bad name!", "secret1", "name may only use"),
    ("bob", "short", "at least 6"),
])
def test_register_refusals(name, password, message):
    accounts, _ = make_accounts()
    result_of(accounts.register("alice", "secret1"))
    with pytest.raises(ChatError, match=message):
        result_of(accounts.register(name, password))


def test_registration_can_be_closed():
    accounts, _ = make_accounts(allow_register=False)
    with pytest.raises(ChatError, match="registration is closed"):
        result_of(accounts.register("alice", "secret1"))


def test_lockout_through_the_facade_and_no_password_in_errors():
    accounts, clock = make_accounts()
    result_of(accounts.register("alice", "secret1"))
    for guess in ("guess-one", "guess-two", "guess-three"):
        with pytest.raises(ChatError) as e:
            result_of(accounts.login("alice", guess, "ip"))
        assert guess not in e.value.message
    # Even the right password is refused while locked out.
    with pytest.raises(ChatError, match="too many failed logins"):
        result_of(accounts.login("alice", "secret1", "other-ip"))
    with pytest.raises(ChatError, match="too many failed logins"):
        result_of(accounts.change_password("alice", "secret1", "whatever1", "x"))
    clock.advance(60)
    assert result_of(accounts.login("alice", "secret1", "ip")) == "alice"


def test_the_owner_gets_past_strangers_guessing():
    accounts, clock = make_accounts()
    result_of(accounts.register("alice", "secret1", "home"))
    for n in range(3):
        with pytest.raises(ChatError, match="wrong password"):
            result_of(accounts.login("alice", "guess", f"stranger{n}"))
    with pytest.raises(ChatError, match="too many failed logins for alice"):
        result_of(accounts.login("alice", "secret1", "cafe"))
    assert result_of(accounts.login("alice", "secret1", "home")) == "alice"
    clock.advance(60)
    assert result_of(accounts.login("alice", "secret1", "cafe")) == "alice"
    # A login remembers its address: the cafe is now known too.
    for n in range(3, 6):
        with pytest.raises(ChatError, match="wrong password"):
            result_of(accounts.login("alice", "guess", f"stranger{n}"))
    assert result_of(accounts.login("alice", "secret1", "cafe")) == "alice"


def test_client_line_editor_hides_a_password_and_forgets_it():
    from chatd.userinput import LineEditor

    class Screen:
        shown = []

        def set_input(self, text):
            self.shown.append(text)

    lines = []
    editor = LineEditor(Screen(), lines.append, lambda: None)
    editor.dataReceived(b"/login alice\r")
    editor.secret = True
    editor.dataReceived(b"hunter22")
    editor.dataReceived(b"\r")
    editor.secret = False
    assert lines == ["/login alice", "hunter22"]
    assert not any("hunter" in text for text in Screen.shown)
    assert editor.history == ["/login alice"]


def test_a_busy_answer_counts_as_neither_failure_nor_registration():
    def busy(f, *args):
        return defer.fail(ChatError("server busy, try again in a moment"))

    accounts = Accounts(MemoryAccountStore(), Hasher(**CHEAP), busy, task.Clock())
    for n in range(10):
        with pytest.raises(ChatError, match="server busy"):
            result_of(accounts.login("alice", "secret1", "ip"))
        with pytest.raises(ChatError, match="server busy"):
            result_of(accounts.register(f"bob{n}", "secret1", "ip"))
    assert accounts.limiter.begin("alice", "ip")  # nothing held or counted
    assert accounts.registrations.begin("ip") == "ip"
