"""
twistd glue: the ``chatd`` command-line options and ``makeService``.
"""

import socket

from twisted.application import service, strports
from twisted.python import usage

from chatd import grammar
from chatd.limits import BACKLOG

DEFAULT_PORT = 5002


def _port(value):
    try:
        port = int(value)
    except ValueError:
        raise usage.UsageError(f"--port must be a number from 0 to 65535, not {value!r}")
    if not 0 <= port <= 65535:
        raise usage.UsageError(f"--port must be from 0 to 65535, not {port}")
    return port


def _count(option, minimum=0):
    def coerce(value):
        try:
            number = int(value)
        except ValueError:
            raise usage.UsageError(f"--{option} must be a whole number, not {value!r}")
        if number < minimum:
            raise usage.UsageError(f"--{option} must be at least {minimum}, not {number}")
        return number
    return coerce


def _size(option):
    def coerce(value):
        if isinstance(value, int):
            return value
        try:
            return grammar.parse_size(value)
        except ValueError:
            raise usage.UsageError(
                f"--{option} must be a byte count like 50M, 1G or 500K, not {value!r}")
    return coerce


def _rate(value):
    try:
        rate = float(value)
    except ValueError:
        raise usage.UsageError(f"--rate must be a number of lines per second, not {value!r}")
    if not 0 <= rate < float("inf"):
        raise usage.UsageError(f"--rate must be 0 (off) or more, not {value!r}")
    return rate


def _redis(value):
    from chatd.cluster.config import parse_redis_url

    try:
        return parse_redis_url(value)
    except ValueError as e:
        raise usage.UsageError(f"--redis {value!r}: {e}")


MODES = ("chat", "pair")


def _mode(value):
    if value not in MODES:
        raise usage.UsageError(
            f"--mode must be one of {', '.join(MODES)}, not {value!r}")
    return value


def _seconds(option):
    def coerce(value):
        try:
            seconds = float(value)
        except ValueError:
            raise usage.UsageError(f"--{option} must be a number of seconds, not {value!r}")
        if not 0 < seconds < float("inf"):
            raise usage.UsageError(f"--{option} must be more than 0, not {value!r}")
        return seconds
    return coerce


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("chatd: group chat with file sharing over plain TCP lines. "
                "Join with `nc HOST PORT` or `telnet HOST PORT`.")

    optParameters = [
        ["port", "p", DEFAULT_PORT, "TCP port to listen on.", _port],
        ["interface", "i", "",
         "Address to listen on (default: all interfaces, IPv4 and IPv6; "
         "127.0.0.1 for this machine only)."],
        ["data-dir", "d", "chatd-data", "Directory for shared files."],
        ["keep-files", None, 5, "How many of the most recent files to keep.",
         _count("keep-files", 1)],
        ["max-file-size", None, "50M",
         "Largest file accepted (bytes, or with a K/M/G suffix).",
         _size("max-file-size")],
        ["name", None, None, "Server name shown in the greeting."],
        ["mode", None, "chat",
         "chat: group chat with files; pair: the two-client assignment "
         "(clients X and Y, relay until Bye).", _mode],
        ["max-line", None, 4096,
         "Longest line accepted, in bytes; longer ones are refused and skipped.",
         _count("max-line", 64)],
        ["sendq", None, "256K",
         "Chat queued to a client that stops reading before it is dropped "
         "(bytes, or with a K/M suffix).", _size("sendq")],
        ["rate", None, 5.0,
         "Lines per second per connection once the burst is spent "
         "(faster senders are slowed, not dropped); 0 turns pacing off.", _rate],
        ["burst", None, 10, "Lines a connection may send at once before pacing.",
         _count("burst", 1)],
        ["max-conns-per-ip", None, 16,
         "Connections from one address (IPv6: one /64); 0 turns the limit off.",
         _count("max-conns-per-ip")],
        ["max-conns", None, 10000, "Connections in all; 0 turns the limit off.",
         _count("max-conns")],
        ["upload-timeout", None, 60.0,
         "Seconds an upload may sit idle before it is cancelled.",
         _seconds("upload-timeout")],
        ["presence-limit", None, 200,
         "Announce joins and departures only while at most this many are "
         "online (so a crowd arriving is not announced to everyone); 0: always.",
         _count("presence-limit")],
        ["hash-memory", None, "64M",
         "Memory each password hash uses (argon2id; bytes, or with a K/M "
         "suffix): less is faster and weaker.", _size("hash-memory")],
        ["tls-port", None, None, "Also listen for TLS on this port.", _port],
        ["tls-cert", None, None, "PEM certificate (chain) for --tls-port."],
        ["tls-key", None, None,
         "PEM private key for --tls-port (default: in the --tls-cert file)."],
        ["redis", None, None,
         "Join the cluster of chatd nodes sharing this Redis: "
         "redis://HOST[:PORT][/DB] (default port 6379, DB 0).", _redis],
        ["tls-handshake-timeout", None, 30.0,
         "Seconds a TLS connection may take to finish its handshake.",
         _seconds("tls-handshake-timeout")],
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

    def opt_listen(self, description):
        """
        Also listen on this strports endpoint (repeatable, or comma-separated),
        e.g. ssl:5004:privateKey=key.pem:certKey=cert.pem.
        """
        self["listen"].extend(d.strip() for d in description.split(",") if d.strip())

    def postOptions(self):
        for option in ("max-file-size", "sendq", "hash-memory"):
            self[option] = _size(option)(self[option])
        if self["sendq"] < 4096:
            raise usage.UsageError("--sendq must be at least 4K")
        if self["hash-memory"] < 8192:
            raise usage.UsageError("--hash-memory must be at least 8K")
        if self["tls-port"] is None:
            if self["tls-cert"] or self["tls-key"]:
                raise usage.UsageError("--tls-cert and --tls-key need --tls-port")
        else:
            from chatd.tls import check_certificate

            if not self["tls-cert"]:
                raise usage.UsageError("--tls-port needs --tls-cert FILE "
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

    def limits(self):
        """
        The defences' settings these options ask for.
        """
        from chatd.limits import Limits

        return Limits(
            max_line=self["max-line"], sendq=self["sendq"], rate=self["rate"],
            burst=self["burst"], max_conns_per_ip=self["max-conns-per-ip"],
            max_conns=self["max-conns"], upload_timeout=self["upload-timeout"],
            presence_limit=self["presence-limit"] or None,
        )


def _dual_stack():
    """
    Whether this machine can listen on IPv6 ``::`` (which on Linux, macOS
    and Windows with Twisted's defaults also accepts IPv4).
    """
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind(("::", 0))
        return True
    except (OSError, AttributeError):
        return False


def _any_interface(interface):
    return interface or ("::" if _dual_stack() else "0.0.0.0")


def endpoint_description(port, interface):
    """
    The ``strports`` description for a port and interface ("" = all).
    """
    interface = _any_interface(interface)
    kind = "tcp6" if ":" in interface else "tcp"
    escaped = interface.replace(":", "\\:")
    return f"{kind}:{port}:interface={escaped}:backlog={BACKLOG}"


def makeFactory(options, reactor, accounts=None):
    """
    The hub, file store and factory for these options (in pair mode: the
    pairing and its factory); ``accounts``: registered names, if any.
    """
    if options["mode"] == "pair":
        from chatd.pair import Pairing
        from chatd.pair_protocol import PairFactory

        return PairFactory(Pairing(), reactor, limits=options.limits())

    from twisted.internet import threads

    from chatd.hub import Hub
    from chatd.protocol import ChatFactory
    from chatd.store import FileStore

    def blocking(f, *args):
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

    store = FileStore(options["data-dir"], keep=options["keep-files"],
                      max_size=options["max-file-size"], blocking=blocking)
    limits = options.limits()
    reserved = accounts.store.registered if accounts is not None else None
    if options["redis"] is None:
        hub = Hub(presence_limit=limits.presence_limit, reserved=reserved)
    else:
        from chatd.cluster.hub import ClusterHub

        hub = ClusterHub(options["redis"], reactor,
                         presence_limit=limits.presence_limit, reserved=reserved)
    return ChatFactory(hub, store, reactor, server_name=options["name"], limits=limits,
                       accounts=accounts, coalesce_writes=True)


def makeAccounts(options, reactor, parent):
    """
    The account store under --data-dir, with its hashing threads as a
    child service of ``parent``.
    """
    from chatd.accounts import Accounts, AccountsService, Hasher, SQLiteAccountStore

    store = SQLiteAccountStore.in_directory(options["data-dir"])
    workers = AccountsService(reactor, store)
    workers.setServiceParent(parent)
    return Accounts(store, Hasher(memory_kib=options["hash-memory"] // 1024),
                    workers.run, reactor, allow_register=not options["no-register"],
                    require_login=options["require-login"])


def listen_descriptions(options):
    """
    The strports descriptions to listen on: plain, TLS, then --listen.
    """
    from chatd.tls import tls_description

    descriptions = []
    if not options["no-plain"]:
        descriptions.append(endpoint_description(options["port"], options["interface"]))
    if options["tls-port"] is not None:
        interface = options["interface"] or ("::" if _dual_stack() else "")
        descriptions.append(tls_description(
            options["tls-port"], options["tls-cert"],
            options["tls-key"] or options["tls-cert"], interface))
    return descriptions + options["listen"]


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    from chatd.tls import HandshakeFirstFactory, is_tls

    top = service.MultiService()
    accounts = None
    if options["mode"] == "chat":
        accounts = makeAccounts(options, reactor, top)
    factory = makeFactory(options, reactor, accounts)
    if options["redis"] is not None:
        from chatd.cluster.hub import ClusterService

        ClusterService(factory.hub).setServiceParent(top)
    for description in listen_descriptions(options):
        listener = factory
        if is_tls(description):
            listener = HandshakeFirstFactory(factory, reactor,
                                             options["tls-handshake-timeout"])
        _listening(options, description, listener, reactor).setServiceParent(top)
    return top


def _listening(options, description, factory, reactor):
    """
    The service listening on ``description``: with --reuse-port, --port's
    socket is made with SO_REUSEPORT (see ``chatd.reuseport``).
    """
    if options["reuse-port"] and description == \
            endpoint_description(options["port"], options["interface"]):
        from twisted.application.internet import StreamServerEndpointService

        from chatd.reuseport import ReusePortEndpoint

        endpoint = ReusePortEndpoint(reactor, options["port"],
                                     _any_interface(options["interface"]), BACKLOG)
        listening = StreamServerEndpointService(endpoint, factory)
        listening._raiseSynchronously = True  # a port in use stops the start, as strports does
        return listening
    return strports.service(description, factory, reactor=reactor)
