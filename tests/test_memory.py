"""
Per-connection memory (issue 13) as a unit: an idle logged-in connection
keeps only the attributes ``ChatProtocol.__init__`` sets, so CPython keeps
them in the class's shared compact table, not a ~1.5 KB dict of its own.
"""

from twisted.internet import task
from twisted.internet.testing import StringTransport

from chatd.hub import Hub
from chatd.limits import Limits
from chatd.factory import ChatFactory
from chatd.protocol import ChatProtocol
from chatd.store import FileStore

# CPython 3.11 keeps at most 30 names in a class's shared table
# (SHARED_KEYS_MAX_SIZE); measured here, 29 names set in __init__ stay
# compact and 30 do not.  Names set later, in a different order on
# different instances, give each such instance a dict of its own.
SHARED_KEYS = 29


def connected(tmp_path, clock):
    store = FileStore(tmp_path, keep=5, max_size=1024, clock=lambda: 0.0)
    factory = ChatFactory(Hub(), store, clock, server_name="t",
                          limits=Limits(), coalesce_writes=True)

    def connect():
        p = factory.buildProtocol(None)
        p.makeConnection(StringTransport())
        return p
    return connect


def test_idle_logged_in_connection_has_only_init_attributes(tmp_path):
    initial = list(vars(ChatProtocol()))
    assert len(initial) <= SHARED_KEYS, initial
    clock = task.Clock()
    connect = connected(tmp_path, clock)
    users = []
    for name in ("alice", "bob"):
        p = connect()
        p.dataReceived(b"/nick %s\r\n" % name.encode())
        users.append(p)
    clock.advance(2)
    for p in users:
        assert p.name in ("alice", "bob")
        assert set(vars(p)) - set(initial) == set()


def test_a_connection_paused_and_resumed_gains_no_attribute(tmp_path):
    # A cluster /nick waits for Redis with the connection's input paused.
    initial = set(vars(ChatProtocol()))
    p = connected(tmp_path, task.Clock())()
    p.pause_input("rename")
    p.pause_input("pacing")
    assert p.paused
    p.resume_input("rename")
    assert p.paused
    p.resume_input("pacing")
    assert not p.paused and p._pauses is None  # the set of reasons is gone too
    assert set(vars(p)) == initial
