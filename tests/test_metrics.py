"""
The metrics as units: a registry of their own, the reactor lag probe on a
``task.Clock``, fan-out timed once per broadcast pass, and ``NoMetrics``
standing in for every event.
"""

import inspect

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet import task

from chatd.metrics import LagProbe, Metrics, NoMetrics, upload_refusal
from test_protocol import NO_PACING, Server


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels)


def test_no_metrics_answers_every_event():
    events = {n for n, f in inspect.getmembers(Metrics, inspect.isfunction)
              if not n.startswith("_")}
    assert events <= {n for n in dir(NoMetrics) if not n.startswith("_")}


def test_lag_probe_records_how_late_its_timer_ran():
    clock = task.Clock()
    metrics = Metrics(CollectorRegistry())
    probe = LagProbe(clock, metrics.lag, interval=0.5)
    probe.startService()
    clock.advance(0.5)
    clock.advance(0.75)  # the next one ran 0.25 s late
    probe.stopService()
    assert not clock.getDelayedCalls()
    registry = metrics.registry
    assert sample(registry, "chatd_reactor_lag_seconds_count") == 2
    assert sample(registry, "chatd_reactor_lag_seconds_sum") == 0.25


def test_a_broadcast_is_one_fanout_sample_and_counts_its_recipients(tmp_path):
    metrics = Metrics(CollectorRegistry())
    server = Server(tmp_path, limits=NO_PACING)
    server.factory.metrics = metrics
    metrics.watch(server.factory)
    users = [server.connect() for _ in range(5)]
    registry = metrics.registry
    before = sample(registry, "chatd_deliveries_total")
    users[0].say("hello")
    users[0].say("/who")  # no fan-out: not timed
    assert sample(registry, "chatd_deliveries_total") == before + 4
    assert sample(registry, "chatd_fanout_seconds_count") == 1
    assert sample(registry, "chatd_lines_received_total") == 2
    assert sample(registry, "chatd_connections", kind="tcp") == 5
    assert b"chatd_sendq_bytes_max 0.0" in generate_latest(registry)


def test_upload_refusal_reasons():
    assert upload_refusal("file too large: x is 3 MiB") == "too_large"
    assert upload_refusal("sha256 mismatch for x: got a, expected b") == "checksum"
    assert upload_refusal("could not store x: No space left") == "storage"
    assert upload_refusal("invalid file name: ..") == "bad_name"
