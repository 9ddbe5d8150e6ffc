"""
The kernel's unsent-bytes limit (``--kernel-sendq``) on a real loopback TCP
socket: set when output starts, lifted while a file is sent, set again after.
"""

import io
import socket

import pytest
from twisted.internet import task, tcp
from twisted.internet.testing import MemoryReactorClock

from chatd import outflow, transfer
from chatd.sockopts import UNLIMITED, limit_unsent

LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", None)
pytestmark = pytest.mark.skipif(LOWAT is None, reason="no TCP_NOTSENT_LOWAT here")


@pytest.fixture
def tcp_pair():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    yield server, client
    server.close()
    client.close()


def unsent_limit(sock):
    return sock.getsockopt(socket.IPPROTO_TCP, LOWAT)


class Receiver(transfer.TransferReceiver):
    kernel_sendq = 64 * 1024


def test_set_while_chatting_lifted_while_a_file_is_sent(tcp_pair):
    server, _ = tcp_pair
    p = Receiver()
    t = tcp.Connection(server, p, MemoryReactorClock())
    t.connected = 1
    p.makeConnection(t)
    p.start_output_flow(0, outflow.WriteCoalescer(task.Clock()))
    assert unsent_limit(server) == 64 * 1024
    sent = []
    p.send_file("FILE 3 x f", io.BytesIO(b"abc"), done=sent.append)
    assert unsent_limit(server) == UNLIMITED
    while not sent:
        t.producer.resumeProducing()
    assert unsent_limit(server) == 64 * 1024


def test_no_handle_no_harm():
    limit_unsent(object(), 4096)  # a transport without a socket: nothing to do
