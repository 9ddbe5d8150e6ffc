"""
Where the daemon listens: the endpoint descriptions for the plain, TLS and
web ports (all interfaces means IPv4 and IPv6 where the machine can), and
the listening service for each (``--reuse-port``'s own for the plain port).
"""

import socket

from twisted.application import strports

from chatd.limits import BACKLOG


def dual_stack():
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


def any_interface(interface):
    return interface or ("::" if dual_stack() else "0.0.0.0")


def endpoint_description(port, interface):
    """
    The ``strports`` description for a port and interface ("" = all).
    """
    interface = any_interface(interface)
    kind = "tcp6" if ":" in interface else "tcp"
    escaped = interface.replace(":", "\\:")
    return f"{kind}:{port}:interface={escaped}:backlog={BACKLOG}"


def listen_descriptions(options):
    """
    The strports descriptions to listen on: plain, TLS, then --listen.
    """
    descriptions = []
    if not options["no-plain"]:
        descriptions.append(endpoint_description(options["port"], options["interface"]))
    if options["tls-port"] is not None:
        descriptions.append(tls_endpoint(options, options["tls-port"], options["interface"]))
    return descriptions + options["listen"]


def tls_endpoint(options, port, interface):
    """
    The ``ssl:`` description for ``port`` with the --tls-cert/--tls-key
    certificate, on ``interface`` ("" = all).
    """
    from chatd.tls import tls_description

    return tls_description(port, options["tls-cert"], options["tls-key"] or options["tls-cert"],
                           interface or ("::" if dual_stack() else ""))


def listening(options, description, factory, reactor):
    """
    The service listening on ``description``: with --reuse-port, --port's
    socket is made with SO_REUSEPORT (see ``chatd.reuseport``).
    """
    if options["reuse-port"] and description == \
            endpoint_description(options["port"], options["interface"]):
        from twisted.application.internet import StreamServerEndpointService

        from chatd.reuseport import ReusePortEndpoint

        endpoint = ReusePortEndpoint(reactor, options["port"],
                                     any_interface(options["interface"]), BACKLOG)
        listening = StreamServerEndpointService(endpoint, factory)
        listening._raiseSynchronously = True  # a port in use stops the start, as strports does
        return listening
    return strports.service(description, factory, reactor=reactor)
