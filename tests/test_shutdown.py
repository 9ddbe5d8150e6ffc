"""
``GracefulShutdown`` as a unit: real protocols on ``StringTransport``s,
time from ``task.Clock``: who is told, who is closed at once, who gets the
grace period, and when the rest are aborted.
"""

from twisted.internet.error import ConnectionAborted

from chatd.shutdown import DRAIN, GracefulShutdown
from test_protocol import Server


def _lose(user):
    """
    The transport closed: tell the protocol, as the reactor would.
    """
    user.p.connectionLost(ConnectionAborted())


def test_idle_are_closed_uploads_get_the_grace_then_all_are_aborted(tmp_path):
    server = Server(tmp_path)
    idle, stalled, uploader = server.connect(), server.connect(), server.connect()
    for u in (idle, stalled, uploader):
        u.lines()
    uploader.feed(b"/upload f.bin 10\n12345")
    shutdown = GracefulShutdown(server.factory, server.clock, grace=10.0, message="bye")
    shutdown.startService()
    done = shutdown.stopService()
    for u in (idle, stalled, uploader):
        assert "*** server shutting down: bye" in u.lines()
    assert idle.t.disconnecting and stalled.t.disconnecting
    assert not uploader.t.disconnecting  # still receiving its upload
    assert server.factory.buildProtocol(None).__class__.__name__ == "Refusal"
    _lose(idle)  # closed in time; the stalled reader is not
    server.clock.advance(DRAIN)
    assert stalled.t.disconnected  # aborted: StringTransport.abortConnection
    assert not uploader.t.disconnected
    _lose(stalled)
    server.clock.advance(9.0 - DRAIN - 0.01)
    assert not uploader.t.disconnected and not done.called
    server.clock.advance(0.01)  # the deadline: the grace less a 1 s margin
    assert uploader.t.disconnected
    _lose(uploader)
    assert done.called
    assert server.temp_files() == []  # the cut upload left nothing


def test_an_upload_finishing_within_the_grace_is_stored_then_closed(tmp_path):
    server = Server(tmp_path)
    uploader = server.connect()
    uploader.lines()
    uploader.feed(b"/upload f.bin 10\n12345")
    shutdown = GracefulShutdown(server.factory, server.clock, grace=10.0)
    shutdown.startService()
    done = shutdown.stopService()
    assert uploader.lines() == ["*** server shutting down"]
    uploader.feed(b"67890/who\n")
    lines = uploader.lines()
    assert lines[0].startswith("*** stored f.bin: 10 bytes")
    assert uploader.t.disconnecting
    assert server.stored() == {"f.bin": b"1234567890"}
    _lose(uploader)
    assert done.called and not server.clock.getDelayedCalls()


def test_a_download_finishing_within_the_grace_is_sent_whole_then_closed(tmp_path):
    server = Server(tmp_path, max_size=1 << 20)
    server.put("f.bin", b"y" * 1000)
    reader = server.connect()
    reader.lines()
    reader.say("/download f.bin")
    shutdown = GracefulShutdown(server.factory, server.clock, grace=10.0)
    shutdown.startService()
    done = shutdown.stopService()
    assert reader.p.transferring and not reader.t.disconnecting
    reader.pump_file()
    data = reader.raw()
    assert data.startswith(b"FILE 1000 ") and b"y" * 1000 + b"*** server shutting down\r\n" in data
    assert reader.t.disconnecting
    _lose(reader)
    assert done.called
