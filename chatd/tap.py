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


def _size(value):
    try:
        return grammar.parse_size(value)
    except ValueError:
        raise usage.UsageError(
            f"--max-file-size must be a byte count like 50M, 1G or 500K, not {value!r}")


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
         "Largest file accepted (bytes, or with a K/M/G suffix).", _size],
        ["name", None, None, "Server name shown in the greeting."],
    ]

    def postOptions(self):
        if isinstance(self["max-file-size"], str):
            self["max-file-size"] = _size(self["max-file-size"])
        if self["max-file-size"] < 0:
            raise usage.UsageError("--max-file-size must not be negative")


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
    The hub, file store and factory for these options.
    """
    from twisted.internet import threads

    from chatd.hub import Hub
    from chatd.protocol import ChatFactory
    from chatd.store import FileStore

    def blocking(f, *args):
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

    store = FileStore(options["data-dir"], keep=options["keep-files"],
                      max_size=options["max-file-size"], blocking=blocking)
    return ChatFactory(Hub(), store, reactor, server_name=options["name"])


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    top = service.MultiService()
    factory = makeFactory(options, reactor)
    description = endpoint_description(options["port"], options["interface"])
    strports.service(description, factory, reactor=reactor).setServiceParent(top)
    return top
