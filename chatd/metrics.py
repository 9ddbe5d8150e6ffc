"""
Prometheus metrics (``--metrics-port``): every ``chatd_...`` metric is
defined here, in a registry passed in (never the global one, so tests and
two daemons in one process stay apart).

The hot path stays cheap: what can be read off the daemon's state is read
at scrape time by ``_Sampler`` (connections, logged-in users, rooms, files,
send queues, bytes sent, deliveries, login failures), so a broadcast costs
nothing per recipient; what happens once per event (a line, a read, a
fan-out pass, an upload, a drop) is counted as it happens.  ``NoMetrics``
stands in when metrics are off.  ``MetricsPage`` serves the registry on the
reactor thread (the sampler reads reactor-owned state) and ``LagProbe``
times a periodic call on the injected clock.
"""

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from twisted.application.service import Service
from twisted.web.resource import Resource

CONNECTION_KINDS = ("tcp", "tls", "web")
DROP_REASONS = ("sendq", "timeout", "limit", "kicked", "banned")
REFUSAL_REASONS = ("limit", "banned", "shutdown")
UPLOAD_REFUSALS = ("too_large", "bad_name", "checksum", "incomplete", "timeout",
                   "storage")
FANOUT_BUCKETS = (.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1,
                  .25, .5, 1.0, 2.5)
LAG_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0)
LAG_INTERVAL = 0.5  # seconds between reactor lag probes


class Metrics:
    """
    The event counters, and ``watch(factory)`` for what is sampled.
    """

    def __init__(self, registry):
        self.registry = registry

        def counter(name, doc, labels=(), values=()):
            metric = Counter(name, doc, labels, registry=registry)
            for value in values:
                metric.labels(value)  # listed at 0 before the first
            return metric

        self._accepted = counter("chatd_connections_accepted",
                                 "Connections accepted.")
        self._refused = counter("chatd_connections_refused",
                                "Connections refused at accept.", ["reason"],
                                REFUSAL_REASONS)
        self._dropped = counter("chatd_clients_dropped", "Clients closed by the server.",
                                ["reason"], DROP_REASONS)
        self._lines = counter("chatd_lines_received", "Lines received from clients.")
        self._bytes_in = counter("chatd_bytes_received",
                                 "Bytes received from clients (lines and uploads).")
        self._uploads = counter("chatd_uploads", "Uploads stored.")
        self._upload_bytes = counter("chatd_upload_bytes", "Bytes of uploads stored.")
        self._uploads_refused = counter("chatd_uploads_refused", "Uploads not stored.",
                                        ["reason"], UPLOAD_REFUSALS)
        self._downloads = counter("chatd_downloads", "Downloads started.")
        self._fanout = Histogram(
            "chatd_fanout_seconds",
            "From a line's arrival to the end of the fan-out pass it caused.",
            buckets=FANOUT_BUCKETS, registry=registry)
        self.lag = Histogram(
            "chatd_reactor_lag_seconds",
            f"How late a timer due every {LAG_INTERVAL} s ran.",
            buckets=LAG_BUCKETS, registry=registry)
        self._fanouts = None  # the hub's FanoutCount, once watched

    def watch(self, factory):
        """
        Sample ``factory``'s connections, hub, store and accounts at scrape.
        """
        hub = getattr(factory, "hub", None)
        self._fanouts = getattr(hub, "fanouts", None)
        self.registry.register(_Sampler(factory))

    # --- events ----------------------------------------------------------

    def accepted(self):
        self._accepted.inc()

    def refused(self, reason):
        self._refused.labels(reason).inc()

    def client_dropped(self, reason):
        self._dropped.labels(reason).inc()

    def received(self, size):
        self._bytes_in.inc(size)

    def line_arrived(self):
        """
        A line is about to be handled: a mark for ``line_handled``.
        """
        self._lines.inc()
        fanouts = self._fanouts
        return time.perf_counter(), fanouts.passes if fanouts is not None else 0

    def line_handled(self, mark):
        """
        Time the line's fan-out, if it caused one.
        """
        fanouts = self._fanouts
        if fanouts is not None and fanouts.passes != mark[1]:
            self._fanout.observe(time.perf_counter() - mark[0])

    def upload_stored(self, size):
        self._uploads.inc()
        self._upload_bytes.inc(size)

    def upload_refused(self, reason):
        self._uploads_refused.labels(reason).inc()

    def download(self):
        self._downloads.inc()


class NoMetrics:
    """
    Metrics off: every event is a no-op.
    """

    def watch(self, factory):
        pass

    def accepted(self):
        pass

    def refused(self, reason):
        pass

    def client_dropped(self, reason):
        pass

    def received(self, size):
        pass

    def line_arrived(self):
        return None

    def line_handled(self, mark):
        pass

    def upload_stored(self, size):
        pass

    def upload_refused(self, reason):
        pass

    def download(self):
        pass


NO_METRICS = NoMetrics()


def upload_refusal(message):
    """
    The ``chatd_uploads_refused`` reason for a refusal's error message.
    """
    for start, reason in (("file too large", "too_large"), ("sha256 mismatch", "checksum"),
                          ("could not store", "storage")):
        if message.startswith(start):
            return reason
    return "bad_name"


class _Sampler:
    """
    A custom collector: what is read off the daemon's state at each scrape.
    """

    def __init__(self, factory):
        self.factory = factory

    def collect(self):
        factory = self.factory
        live = list(factory.live)
        kinds = dict.fromkeys(CONNECTION_KINDS, 0)
        for p in live:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        connections = GaugeMetricFamily("chatd_connections", "Open connections.",
                                        labels=["kind"])
        for kind, count in kinds.items():
            connections.add_metric([kind], count)
        yield connections
        yield GaugeMetricFamily("chatd_users_logged_in", "Connections logged in to an account.",
                                value=sum(1 for p in live if p.account is not None))
        queued = [p.send_queue_bytes for p in live] or [0]
        yield GaugeMetricFamily("chatd_sendq_bytes_max",
                                "The longest send queue (bytes waiting for a slow reader).",
                                value=max(queued))
        yield GaugeMetricFamily("chatd_sendq_bytes", "Bytes waiting in all send queues.",
                                value=sum(queued))
        hub = getattr(factory, "hub", None)
        yield CounterMetricFamily(
            "chatd_bytes_sent", "Bytes sent to clients: lines (as handed to their "
            "connections) and downloads.",
            value=factory.live.bytes_sent_closed + sum(p.bytes_sent for p in live)
            + (hub.fanouts.bytes if hub is not None else 0))
        if hub is not None:
            yield GaugeMetricFamily("chatd_rooms", "Rooms.", value=len(hub.rooms))
            yield CounterMetricFamily("chatd_deliveries",
                                      "Lines handed to recipients by fan-out.",
                                      value=hub.fanouts.deliveries)
        coalescer = getattr(factory, "coalescer", None)
        if coalescer is not None:
            yield CounterMetricFamily(
                "chatd_write_passes", "Reactor passes that wrote coalesced lines.",
                value=coalescer.passes)
            yield CounterMetricFamily(
                "chatd_connection_writes", "Writes of a pass's lines to a connection "
                "(a send() each): deliveries / writes is the lines a write carries.",
                value=coalescer.writes)
        link = getattr(hub, "link", None)  # a ClusterHub's (--redis)
        if link is not None:
            yield from _cluster(hub, link)
        store = getattr(factory, "store", None)
        if store is not None:
            yield GaugeMetricFamily("chatd_files_stored", "Files kept.",
                                    value=len(store.entries))
            yield GaugeMetricFamily("chatd_file_bytes_stored", "Bytes of the files kept.",
                                    value=sum(e.size for e in store.entries))
        limiter = getattr(getattr(factory, "accounts", None), "limiter", None)
        if limiter is not None:
            yield CounterMetricFamily("chatd_login_failures", "Failed logins.",
                                      value=limiter.failures_total)
            yield CounterMetricFamily("chatd_lockouts",
                                      "Login attempts refused by the lock-out.",
                                      value=limiter.lockouts_total)


def _cluster(hub, link):
    """
    A cluster node's link to Redis, and what it could not send or read.
    """
    yield GaugeMetricFamily("chatd_cluster_link_up",
                            "1 while this node's link to Redis is up, else 0.",
                            value=1 if link.up else 0)
    yield CounterMetricFamily(
        "chatd_bus_dropped", "Messages for the other nodes dropped, not queued: "
        "the link was down or over its queue of commands.", value=link.dropped)
    yield CounterMetricFamily("chatd_bus_skipped",
                              "Malformed messages read from the bus and skipped.",
                              value=hub.skipped)
    history = getattr(hub, "store", None)
    if history is not None and hasattr(history, "dropped"):
        yield CounterMetricFamily(
            "chatd_history_writes_dropped",
            "History lines not written to Redis: the link was down or full.",
            value=history.dropped)


class MetricsPage(Resource):
    """
    ``GET /metrics``: the registry in the Prometheus text format, made by
    ``prometheus_client`` on the reactor thread.  (Its ``MetricsResource``
    runs the same exposition in a thread pool, where the sampler would
    read the connections while the reactor changes them.)
    """

    isLeaf = True

    def __init__(self, registry):
        Resource.__init__(self)
        self.registry = registry

    def render_GET(self, request):
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self.registry)


def metrics_site(registry):
    """
    A ``Site`` with ``/metrics`` (and nothing else).
    """
    from twisted.web.server import Site

    root = Resource()
    root.putChild(b"metrics", MetricsPage(registry))
    site = Site(root)
    site.displayTracebacks = False
    site.log = lambda request: None  # no access log line per scrape
    return site


class LagProbe(Service):
    """
    Every ``interval`` seconds on ``clock``, record how late the call ran
    in ``histogram``.
    """

    def __init__(self, clock, histogram, interval=LAG_INTERVAL):
        self.clock = clock
        self.histogram = histogram
        self.interval = interval
        self._call = None

    def startService(self):
        Service.startService(self)
        self._schedule()

    def _schedule(self):
        self._due = self.clock.seconds() + self.interval
        self._call = self.clock.callLater(self.interval, self._tick)

    def _tick(self):
        self.histogram.observe(max(0.0, self.clock.seconds() - self._due))
        self._schedule()

    def stopService(self):
        Service.stopService(self)
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
