"""
Prometheus metrics of a real daemon, scraped over HTTP while a test
connects, chats, uploads, downloads, fails a login and gets kicked; the
metrics port answers on 127.0.0.1 only by default.
"""

import socket
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon import free_port
from loopback import admin, download, upload, users
from test_tls import TLSClient, tls_args


def scrape(port):
    """
    ``{(sample name, ((label, value), ...)): value}`` from ``GET /metrics``.
    """
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        text = r.read().decode("utf-8")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(metrics, name, **labels):
    return metrics[(name, tuple(sorted(labels.items())))]


def test_numbers_move_as_clients_act(make_daemon):
    port = free_port()
    d = make_daemon("--metrics-port", str(port), "--hash-memory", "8K",
                    "--max-file-size", "2K")
    alice, bob = users(d, "alice", "bob")
    m = scrape(port)
    assert value(m, "chatd_connections", kind="tcp") == 2
    assert value(m, "chatd_connections", kind="tls") == 0
    assert value(m, "chatd_connections", kind="web") == 0
    assert value(m, "chatd_connections_accepted_total") >= 3  # and the start probe
    assert value(m, "chatd_rooms") == 1
    assert value(m, "chatd_files_stored") == 0
    for reason in ("sendq", "timeout", "limit", "kicked", "banned"):
        assert value(m, "chatd_clients_dropped_total", reason=reason) == 0
    assert not [k for k in m if k[0].startswith(("chatd_cluster_", "chatd_bus_"))]  # no --redis

    alice.say("hello bob")
    assert bob.expect("<alice>") == "<alice> hello bob"
    after = scrape(port)
    assert value(after, "chatd_lines_received_total") == \
        value(m, "chatd_lines_received_total") + 1
    assert value(after, "chatd_deliveries_total") == value(m, "chatd_deliveries_total") + 1
    # bob's line was one write in one pass
    assert value(after, "chatd_connection_writes_total") == \
        value(m, "chatd_connection_writes_total") + 1
    assert value(after, "chatd_write_passes_total") == value(m, "chatd_write_passes_total") + 1
    assert value(after, "chatd_fanout_seconds_count") == \
        value(m, "chatd_fanout_seconds_count") + 1
    assert value(after, "chatd_bytes_received_total") == \
        value(m, "chatd_bytes_received_total") + len("hello bob\n")
    assert value(after, "chatd_bytes_sent_total") >= \
        value(m, "chatd_bytes_sent_total") + len("<alice> hello bob\r\n")

    m = after
    assert upload(alice, "a.txt", b"x" * 1000).startswith("*** stored a.txt")
    assert upload(alice, "big.txt", b"x" * 5000).startswith("! file too large")
    bob.expect("*** alice shared a.txt")
    header, data = download(bob, "a.txt")
    after = scrape(port)
    assert value(after, "chatd_uploads_total") == 1
    assert value(after, "chatd_upload_bytes_total") == 1000
    assert value(after, "chatd_uploads_refused_total", reason="too_large") == 1
    assert value(after, "chatd_downloads_total") == 1
    assert value(after, "chatd_files_stored") == 1
    assert value(after, "chatd_file_bytes_stored") == 1000
    assert value(after, "chatd_bytes_sent_total") >= value(m, "chatd_bytes_sent_total") + 1000
    assert value(after, "chatd_bytes_received_total") >= \
        value(m, "chatd_bytes_received_total") + 6000

    alice.say("/register alice secret1")
    assert alice.expect("*** registered") == "*** registered and logged in as alice"
    carol = d.client()
    carol.say("/login alice wrongpass")
    assert carol.expect("! wrong password")
    after = scrape(port)
    assert value(after, "chatd_users_logged_in") == 1
    assert value(after, "chatd_login_failures_total") == 1
    assert value(after, "chatd_lockouts_total") == 0

    made = admin(d.data_dir, "make-operator", "alice")
    assert made.returncode == 0, made.stdout
    alice.say("/kick bob")
    assert bob.closed()
    alice.say("/who")
    assert alice.expect("- online (").startswith("- online (2)")
    after = scrape(port)
    assert value(after, "chatd_clients_dropped_total", reason="kicked") == 1
    assert value(after, "chatd_connections", kind="tcp") == 2

    deadline = time.monotonic() + 10
    while value(scrape(port), "chatd_reactor_lag_seconds_count") == 0:
        assert time.monotonic() < deadline, "no reactor lag sample"
        time.sleep(0.1)


def test_metrics_port_is_on_loopback_only_and_off_by_default(make_daemon):
    port = free_port()
    d = make_daemon("--metrics-port", str(port))
    assert scrape(port)
    assert f"Site starting on {port}" in d.log()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), 2)
    # Another interface of this machine, if it has one, refuses too.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent
            own = probe.getsockname()[0]
        except OSError:
            own = None
    if own and not own.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((own, port), 2)
    plain = make_daemon()
    assert "Site starting" not in plain.log()


def test_tls_connections_are_counted_as_tls(make_daemon, certificate):
    port, tls_port = free_port(), free_port()
    d = make_daemon("--metrics-port", str(port), *tls_args(certificate, tls_port))
    secure, plain = TLSClient(tls_port, certificate[0]), d.client()
    secure.say("/who")
    assert secure.expect("- online (").startswith("- online (2)")
    m = scrape(port)
    assert value(m, "chatd_connections", kind="tls") == 1
    assert value(m, "chatd_connections", kind="tcp") == 1


def test_a_reader_dropped_for_its_send_queue_is_counted(make_daemon):
    port = free_port()
    d = make_daemon("--metrics-port", str(port), "--sendq", "4K", "--rate", "0")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", d.port))  # and never reads
    talker = d.client()
    line = "x" * 4000 + "\n"
    deadline = time.monotonic() + 30
    while value(scrape(port), "chatd_clients_dropped_total", reason="sendq") == 0:
        assert time.monotonic() < deadline, "the stalled reader was never dropped"
        talker.send(line * 100)
        talker.say("/who")
        talker.expect("- online (")
    m = scrape(port)
    assert value(m, "chatd_clients_dropped_total", reason="sendq") == 1
    assert value(m, "chatd_connections", kind="tcp") == 1
    stalled.close()
