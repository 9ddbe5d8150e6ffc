"""
twistd glue: the ``chatd`` command-line options and ``makeService``.
"""

import ipaddress
import socket

from twisted.application import service, strports
from twisted.python import usage

from chatd import grammar
from chatd.limits import BACKLOG  # noqa: F401 (tap.BACKLOG, as before)
from chatd.listeners import (  # noqa: F401 (tap.endpoint_description, as before)
    endpoint_description, listen_descriptions, listening, tls_endpoint)
from chatd.optionvalues import (
    MODES, choice, count, lines_per_second, port_number, redis_url, seconds, size)
from chatd.logformat import FORMATS, use_json_logs

DEFAULT_PORT = 5002


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("chatd: group chat with file sharing over plain TCP lines. "
                "Join with `nc HOST PORT` or `telnet HOST PORT`.")

    optParameters = [
        ["port", "p", DEFAULT_PORT, "TCP port to listen on.", port_number("port")],
        ["interface", "i", "",
         "Address to listen on (default: all interfaces, IPv4 and IPv6; "
         "127.0.0.1 for this machine only)."],
        ["data-dir", "d", "chatd-data", "Directory for shared files."],
        ["keep-files", None, 5, "How many of the most recent files to keep.",
         count("keep-files", 1)],
        ["max-file-size", None, "50M",
         "Largest file accepted (bytes, or with a K/M/G suffix).",
         size("max-file-size")],
        ["max-upload-space", None, None,
         "Bytes of uploads in progress at once, in all (default: 4 times "
         "--max-file-size); an upload over it is refused before any byte is "
         "stored.", size("max-upload-space")],
        ["resume-window", None, 600.0,
         "Seconds a cut-off upload that declared a sha256 is kept for "
         "/upload-resume.", seconds("resume-window")],
        ["max-partial-space", None, None,
         "Bytes of cut-off uploads kept for resuming, in all (default: 2 times "
         "--max-file-size); the oldest go first.", size("max-partial-space")],
        ["name", None, None, "Server name shown in the greeting."],
        ["mode", None, "chat",
         "chat: group chat with files; pair: the two-client assignment "
         "(clients X and Y, relay until Bye).", choice("mode", MODES)],
        ["max-line", None, 4096,
         "Longest line accepted, in bytes; longer ones are refused and skipped.",
         count("max-line", 64)],
        ["sendq", None, "256K",
         "Chat queued to a client that stops reading before it is dropped "
         "(bytes, or with a K/M suffix).", size("sendq")],
        ["kernel-sendq", None, "256K",
         "Unsent chat the kernel may hold for a client (TCP_NOTSENT_LOWAT, "
         "lifted while a file is sent; bytes, or with a K/M suffix); 0: the "
         "system's (autotuned, up to ~4M per stalled reader).", size("kernel-sendq")],
        ["rate", None, 5.0,
         "Lines per second per connection once the burst is spent "
         "(faster senders are slowed, not dropped); 0 turns pacing off.", lines_per_second],
        ["burst", None, 10, "Lines a connection may send at once before pacing.",
         count("burst", 1)],
        ["max-conns-per-ip", None, 16,
         "Connections from one address (IPv6: one /64); 0 turns the limit off.",
         count("max-conns-per-ip")],
        ["max-conns", None, 10000, "Connections in all; 0 turns the limit off.",
         count("max-conns")],
        ["upload-timeout", None, 60.0,
         "Seconds an upload may sit idle before it is cancelled and the "
         "connection closed.",
         seconds("upload-timeout")],
        ["presence-limit", None, 200,
         "Announce joins, departures and renames to everyone only while at "
         "most this many are online (so a crowd arriving is not announced to "
         "everyone); 0: always.",
         count("presence-limit")],
        ["history", None, 50,
         "Lines of each room kept (in SQLite under --data-dir) and replayed "
         "to whoever joins; 0 turns history off.", count("history")],
        ["max-rooms", None, 1000,
         "Rooms the server keeps at most (an empty room without topic or "
         "history is forgotten).", count("max-rooms", 1)],
        ["max-rooms-per-user", None, 20, "Rooms one user may be in at once.",
         count("max-rooms-per-user", 1)],
        ["hash-memory", None, "64M",
         "Memory each password hash uses (argon2id; bytes, or with a K/M "
         "suffix): less is faster and weaker.", size("hash-memory")],
        ["tls-port", None, None, "Also listen for TLS on this port.", port_number("tls-port")],
        ["tls-cert", None, None, "PEM certificate (chain) for --tls-port."],
        ["tls-key", None, None,
         "PEM private key for --tls-port (default: in the --tls-cert file)."],
        ["redis", None, None,
         "Join the cluster of chatd nodes sharing this Redis: "
         "redis://HOST[:PORT][/DB] (default port 6379, DB 0).", redis_url],
        ["tls-handshake-timeout", None, 30.0,
         "Seconds a TLS connection may take to finish its handshake.",
         seconds("tls-handshake-timeout")],
        # --- the web client (chatd/web) ---
        ["web-port", None, None,
         "Serve the web client (page, WebSocket, files) on this HTTP port.", port_number("web-port")],
        ["web-tls-port", None, None,
         "Serve the web client over https/wss on this port, with --tls-cert "
         "and --tls-key.", port_number("web-tls-port")],
        ["web-interface", None, "",
         "Address for --web-port and --web-tls-port (default: all interfaces)."],
        ["metrics-port", None, None,
         "Serve Prometheus metrics (GET /metrics) on this port.", port_number("metrics-port")],
        ["metrics-interface", None, "127.0.0.1",
         "Address for --metrics-port (default: this machine only)."],
        ["shutdown-grace", None, 10.0,
         "Seconds uploads and downloads get to finish when the server stops "
         "(SIGTERM, SIGINT); it exits within them.", seconds("shutdown-grace")],
        ["shutdown-message", None, None,
         "Added to the '*** server shutting down' notice."],
        ["log-format", None, "text",
         "text (twistd's own) or json: one JSON object per line, to stdout "
         "or twistd's --logfile.", choice("log-format", FORMATS)],
    ]

    optFlags = [
        ["require-login", None,
         "Only logged-in users may chat: before /login or /register, only "
         "/help and /quit work."],
        ["no-register", None, "Refuse /register (accounts are made elsewhere)."],
        ["no-plain", None, "Do not listen on the plain-text --port."],
        ["reuse-port", None,
         "Listen on --port with SO_REUSEPORT, so several nodes on this machine "
         "share the port (the kernel spreads connections among them)."],
    ]

    def __init__(self):
        usage.Options.__init__(self)
        self["listen"] = []
        self["web-listen"] = []
        self["web-origin"] = []

    def opt_listen(self, description):
        """
        Also listen on this strports endpoint (repeatable, or comma-separated),
        e.g. ssl:5004:privateKey=key.pem:certKey=cert.pem.
        """
        self["listen"].extend(d.strip() for d in description.split(",") if d.strip())

    # --- the web client (chatd/web) ---

    def opt_web_listen(self, description):
        """
        Also serve the web client on this strports endpoint (repeatable),
        e.g. ssl:8443:privateKey=key.pem:certKey=cert.pem for https/wss.
        """
        self["web-listen"].extend(d.strip() for d in description.split(",") if d.strip())

    def opt_web_origin(self, origin):
        """
        Let pages from this origin (scheme://host[:port], or * for any) use
        the chat WebSocket; by default only the daemon's own page may
        (repeatable).
        """
        from chatd.web.origins import check_origin

        try:
            self["web-origin"].append(check_origin(origin))
        except ValueError as e:
            raise usage.UsageError(f"--web-origin: {e}")

    def web_descriptions(self):
        """
        The strports descriptions the web client listens on.
        """
        descriptions = []
        if self["web-port"] is not None:
            descriptions.append(endpoint_description(self["web-port"],
                                                     self["web-interface"]))
        if self["web-tls-port"] is not None:
            descriptions.append(tls_endpoint(self, self["web-tls-port"],
                                             self["web-interface"]))
        return descriptions + self["web-listen"]

    def _check_web(self):
        serving = (self["web-port"] is not None or self["web-tls-port"] is not None
                   or self["web-listen"])
        if not serving and (self["web-interface"] or self["web-origin"]):
            raise usage.UsageError("--web-interface and --web-origin need "
                                   "--web-port, --web-tls-port or --web-listen")
        if serving and self["mode"] != "chat":
            raise usage.UsageError("the web client (--web-port, --web-tls-port, "
                                   "--web-listen) needs --mode chat")

    def postOptions(self):
        self._check_web()
        for option in ("max-file-size", "sendq", "kernel-sendq", "hash-memory"):
            self[option] = size(option)(self[option])
        if self["max-partial-space"] is None:
            self["max-partial-space"] = 2 * self["max-file-size"]
        if self["max-upload-space"] is None:
            self["max-upload-space"] = 4 * self["max-file-size"]
        elif self["max-upload-space"] < self["max-file-size"]:
            raise usage.UsageError("--max-upload-space must be at least --max-file-size")
        if self["sendq"] < 4096:
            raise usage.UsageError("--sendq must be at least 4K")
        if 0 < self["kernel-sendq"] < 4096:
            raise usage.UsageError("--kernel-sendq must be 0 or at least 4K")
        if self["hash-memory"] < 8192:
            raise usage.UsageError("--hash-memory must be at least 8K")
        tls_port = next((f"--{o}" for o in ("tls-port", "web-tls-port")
                         if self[o] is not None), None)
        if tls_port is None:
            if self["tls-cert"] or self["tls-key"]:
                raise usage.UsageError("--tls-cert and --tls-key need --tls-port")
        else:
            from chatd.tls import check_certificate

            if not self["tls-cert"]:
                raise usage.UsageError(f"{tls_port} needs --tls-cert FILE "
                                       "(and --tls-key FILE)")
            check_certificate(self["tls-cert"], self["tls-key"] or self["tls-cert"])
        if self["redis"] is not None and self["mode"] == "pair":
            raise usage.UsageError("--mode pair is one process by design: "
                                   "it cannot join a --redis cluster")
        if self["reuse-port"] and not hasattr(socket, "SO_REUSEPORT"):
            raise usage.UsageError("--reuse-port: this system has no SO_REUSEPORT")
        if self["reuse-port"] and self["no-plain"]:
            raise usage.UsageError("--reuse-port applies to --port, which "
                                   "--no-plain turns off")
        if self["no-plain"] and self["tls-port"] is None and not self["listen"]:
            raise usage.UsageError(
                "--no-plain leaves nothing to listen on: add --tls-port or --listen")
        if self["metrics-port"] is not None and self["mode"] != "chat":
            raise usage.UsageError("--metrics-port is for --mode chat")
        if self["metrics-interface"]:
            try:
                ipaddress.ip_address(self["metrics-interface"])
            except ValueError:
                raise usage.UsageError(
                    f"--metrics-interface must be an IP address (or '' for all), "
                    f"not {self['metrics-interface']!r}")
        if self["shutdown-message"] is not None:
            self["shutdown-message"] = grammar.clean_text(self["shutdown-message"])
        if self["log-format"] == "json" and getattr(self, "parent", None) is not None:
            use_json_logs(self.parent)

    def limits(self):
        """
        The defences' settings these options ask for.
        """
        from chatd.limits import Limits

        return Limits(
            max_line=self["max-line"], sendq=self["sendq"],
            kernel_sendq=self["kernel-sendq"], rate=self["rate"],
            burst=self["burst"], max_conns_per_ip=self["max-conns-per-ip"],
            max_conns=self["max-conns"], upload_timeout=self["upload-timeout"],
            presence_limit=self["presence-limit"] or None,
        )


def makeFactory(options, reactor, accounts=None, metrics=None, history=None):
    """
    The hub, file store, bans and factory for these options (in pair mode:
    the pairing and its factory); ``accounts``: registered names, if any;
    ``metrics``: a ``chatd.metrics.Metrics``, if on; ``history``: the rooms'
    history store, if any.
    """
    if options["mode"] == "pair":
        from chatd.pair import Pairing
        from chatd.pair_protocol import PairFactory

        return PairFactory(Pairing(), reactor, limits=options.limits())

    from twisted.internet import threads

    from chatd.hub import Hub
    from chatd.moderation import Bans, SQLiteBanStore
    from chatd.factory import ChatFactory
    from chatd.store import FileStore

    def blocking(f, *args):
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

    store_options = dict(keep=options["keep-files"], max_size=options["max-file-size"],
                         blocking=blocking, upload_space=options["max-upload-space"],
                         reactor=reactor, resume_window=options["resume-window"],
                         partial_space=options["max-partial-space"])
    limits = options.limits()
    reserved = accounts.store.registered if accounts is not None else None
    hub_options = dict(presence_limit=limits.presence_limit, reserved=reserved,
                       history=options["history"], store=history,
                       max_rooms=options["max-rooms"],
                       max_rooms_per_user=options["max-rooms-per-user"])
    if options["redis"] is None:
        hub = Hub(clock=reactor, **hub_options)
        store = FileStore(options["data-dir"], **store_options)
        bans = Bans(SQLiteBanStore.in_directory(nodeDataDir(options)), reactor)
    else:
        # History, files, accounts and bans are the cluster's (README "Cluster").
        from chatd.cluster.bans import ClusterBans, RedisBanStore
        from chatd.cluster.files import RedisIndex
        from chatd.cluster.hub import ClusterHub

        hub = ClusterHub(options["redis"], reactor, **hub_options)
        bans = ClusterBans(RedisBanStore(hub), reactor)
        store = FileStore(options["data-dir"], node_dir=nodeDataDir(options),
                          index=RedisIndex.factory(hub),
                          **store_options)
        if accounts is not None:
            accounts.store.attach(hub)
        if history is not None:
            history.attach(hub.link, hub.keys.prefix)
    return ChatFactory(hub, store, reactor, server_name=options["name"], limits=limits,
                       accounts=accounts, coalesce_writes=True, metrics=metrics, bans=bans)


def nodeDataDir(options):
    """
    Where this node's own files go: --data-dir, or with --redis (nodes may
    share it) a directory of its own in it (``chatd.cluster.nodedir``).
    """
    if options["redis"] is None:
        return options["data-dir"]
    from chatd.cluster.nodedir import claim_for

    return claim_for(options)


def makeAccounts(options, reactor, parent):
    """
    The account store under --data-dir (with --redis: in Redis, attached
    to the cluster hub by ``makeFactory``), with its hashing threads as a
    child service of ``parent``.
    """
    from chatd.accounts import Accounts, AccountsService, Hasher, SQLiteAccountStore

    limiter = None
    if options["redis"] is None:
        store = SQLiteAccountStore.in_directory(options["data-dir"])
    else:
        from chatd.cluster.accounts import RedisAccountStore
        from chatd.cluster.lockouts import RedisLoginLimiter

        store = RedisAccountStore()
        limiter = RedisLoginLimiter(store, reactor)
    workers = AccountsService(reactor, store)
    workers.setServiceParent(parent)
    return Accounts(store, Hasher(memory_kib=options["hash-memory"] // 1024),
                    workers.run, reactor, allow_register=not options["no-register"],
                    require_login=options["require-login"], limiter=limiter,
                    run_register=workers.run_register)


def makeHistory(options, reactor, parent):
    """
    The rooms' history store under --data-dir (None with --history 0), a
    child service of ``parent`` (started first, so stopped last: the lines
    said until the listeners close are written); with --redis, the
    cluster's in Redis (attached to the hub's link by ``makeFactory``).
    """
    if not options["history"]:
        return None
    from chatd.commands.rooms import MAX_HISTORY

    if options["redis"] is not None:
        from chatd.cluster.history import RedisHistory

        return RedisHistory(keep=max(options["history"], MAX_HISTORY),
                            max_rooms=options["max-rooms"])
    from chatd.history import SQLiteHistory

    history = SQLiteHistory.in_directory(nodeDataDir(options), reactor,
                                         keep=max(options["history"], MAX_HISTORY))
    history.setServiceParent(parent)
    return history


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    from chatd.tls import HandshakeFirstFactory, is_tls

    from chatd.shutdown import GracefulShutdown, exit_zero_on_signals

    top = service.MultiService()
    accounts = history = None
    if options["mode"] == "chat":
        history = makeHistory(options, reactor, top)
        accounts = makeAccounts(options, reactor, top)
    metrics = makeMetrics(options, reactor, top)
    factory = makeFactory(options, reactor, accounts, metrics, history)
    if options["redis"] is not None:
        from chatd.cluster.hub import ClusterService

        ClusterService(factory.hub).setServiceParent(top)
    for description in listen_descriptions(options):
        listener = factory
        if is_tls(description):
            listener = HandshakeFirstFactory(factory, reactor,
                                             options["tls-handshake-timeout"])
        listening(options, description, listener, reactor).setServiceParent(top)
    web = options.web_descriptions()
    if web:
        from chatd.admission import CountedAtAccept
        from chatd.web.site import make_site

        # Limits apply to every web connection from its accept (issue 11).
        site = CountedAtAccept(make_site(factory, reactor, options["web-origin"]),
                               factory.connections, factory.log)
        for description in web:
            strports.service(description, site, reactor=reactor).setServiceParent(top)
    GracefulShutdown(factory, reactor, options["shutdown-grace"],
                     options["shutdown-message"]).setServiceParent(top)
    reactor.callWhenRunning(exit_zero_on_signals, reactor)
    return top


def makeMetrics(options, reactor, parent):
    """
    With --metrics-port: the metrics, their HTTP listener and the reactor
    lag probe (children of ``parent``); else ``None``.
    """
    if options["metrics-port"] is None:
        return None
    from prometheus_client import CollectorRegistry

    from chatd.metrics import LagProbe, Metrics, metrics_site

    metrics = Metrics(CollectorRegistry())
    description = endpoint_description(options["metrics-port"],
                                       options["metrics-interface"])
    strports.service(description, metrics_site(metrics.registry),
                     reactor=reactor).setServiceParent(parent)
    LagProbe(reactor, metrics.lag).setServiceParent(parent)
    return metrics
