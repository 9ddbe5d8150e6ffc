"""
``--redis`` and ``--reuse-port`` as ``makeService`` builds them (the
hostile values are in tests/adversarial/test_adv_cluster.py).
"""

import socket

from twisted.internet.testing import MemoryReactorClock

from chatd import tap
from chatd.cluster.config import RedisAddress
from chatd.cluster.hub import ClusterHub, ClusterService
from chatd.hub import Hub
from chatd.reuseport import ReusePortEndpoint


def service(tmp_path, *args):
    options = tap.Options()
    options.parseOptions(["--port", "0", "--interface", "127.0.0.1",
                          "--data-dir", str(tmp_path / "data"), *args])
    return options, tap.makeService(options, reactor=MemoryReactorClock())


def test_without_redis_nothing_changes(tmp_path):
    options, top = service(tmp_path)
    assert options["redis"] is None and not options["reuse-port"]
    assert not [s for s in top if isinstance(s, ClusterService)]
    [factory] = {getattr(s, "factory", None) for s in top} - {None}
    assert type(factory.hub) is Hub


def test_redis_makes_a_cluster_hub_and_its_service(tmp_path):
    options, top = service(tmp_path, "--redis", "redis://10.1.2.3:7000/4")
    assert options["redis"] == RedisAddress("10.1.2.3", 7000, 4)
    [cluster] = [s for s in top if isinstance(s, ClusterService)]
    assert isinstance(cluster.hub, ClusterHub)
    assert cluster.hub.keys.lobby == "chatd:4:room:lobby"  # channels are per DB


def test_reuse_port_listens_with_so_reuseport(tmp_path):
    from twisted.internet import reactor

    endpoint = ReusePortEndpoint(reactor, 0, "127.0.0.1", 50)
    ports = []
    try:
        first = endpoint.listen(_Factory()).result
        ports.append(first)
        port = first.getHost().port
        second = ReusePortEndpoint(reactor, port, "127.0.0.1", 50).listen(_Factory()).result
        ports.append(second)
        assert second.getHost().port == port  # both listen on one port
        sock = socket.fromfd(first.fileno(), socket.AF_INET, socket.SOCK_STREAM)
        try:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        finally:
            sock.close()
    finally:
        for p in ports:
            p.stopListening()


class _Factory:
    def doStart(self):
        pass

    def doStop(self):
        pass

    def buildProtocol(self, addr):
        return None
