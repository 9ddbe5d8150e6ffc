"""
twistd glue: the ``chatd`` command-line options and ``makeService``.
"""

import socket

from twisted.application import service, strports
from twisted.python import usage

from chatd import grammar

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
    ]

    def postOptions(self):
        for option in ("max-file-size", "sendq"):
            self[option] = _size(option)(self[option])
        if self["sendq"] < 4096:
            raise usage.UsageError("--sendq must be at least 4K")

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


def endpoint_description(port, interface):
    """
    The ``strports`` description for a port and interface ("" = all).
    """
    if not interface:
        interface = "::" if _dual_stack() else "0.0.0.0"
    kind = "tcp6" if ":" in interface else "tcp"
    escaped = interface.replace(":", "\\:")
    return f"{kind}:{port}:interface={escaped}"


def makeFactory(options, reactor):
    """
    The hub, file store and factory for these options (in pair mode: the
    pairing and its factory).
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
    return ChatFactory(Hub(presence_limit=limits.presence_limit), store, reactor,
                       server_name=options["name"], limits=limits)


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    top = service.MultiService()
    factory = makeFactory(options, reactor)
    description = endpoint_description(options["port"], options["interface"])
    strports.service(description, factory, reactor=reactor).setServiceParent(top)
    return top
