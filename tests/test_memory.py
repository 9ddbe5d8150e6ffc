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

SHARED_KEYS = 20  # CPython 3.11-3.13 share about this many names per class


def test_idle_logged_in_connection_has_only_init_attributes(tmp_path):
    initial = list(vars(ChatProtocol()))
    assert len(initial) <= SHARED_KEYS, initial
    clock = task.Clock()
    store = FileStore(tmp_path, keep=5, max_size=1024, clock=lambda: 0.0)
    factory = ChatFactory(Hub(), store, clock, server_name="t",
                          limits=Limits(), coalesce_writes=True)
    users = []
    for name in ("alice", "bob"):
        p = factory.buildProtocol(None)
        p.makeConnection(StringTransport())
        p.dataReceived(b"/nick %s\r\n" % name.encode())
        users.append(p)
    clock.advance(2)
    for p in users:
        assert p.name in ("alice", "bob")
        assert set(vars(p)) - set(initial) == set()
