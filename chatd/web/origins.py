"""
Which pages may open the chat WebSocket: the ``Origin`` a browser sends
against the Host it asked for and the ``--web-origin`` list.
"""

from urllib.parse import urlsplit


def check_origin(origin):
    """
    An ``--web-origin`` value made canonical (``scheme://host[:port]``,
    lower case), or ``*``; ``ValueError`` saying why not otherwise.
    """
    origin = origin.strip().rstrip("/")
    if origin == "*":
        return origin
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"not an origin: {origin!r}")
    if parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.path or parts.query or parts.fragment or parts.username:
        raise ValueError(f"must look like https://host[:port] or *, not {origin!r}")
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(origin, host, allowed):
    """
    Whether a page from ``origin`` may open the chat socket reached as
    ``host`` (the Host header): the same host and port, or listed in
    ``allowed``.  No Origin header: not a browser (which always sends
    one), so no page to protect the user from.
    """
    if origin is None:
        return True
    origin = origin.strip().lower()
    if "*" in allowed or origin in allowed:
        return True
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:  # a malformed Origin is nobody's page: refused (403)
        return False
    return bool(host) and netloc == host.strip().lower()
