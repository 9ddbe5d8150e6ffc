"""
``--redis redis://[:PASSWORD@]HOST[:PORT][/DB]``: where the cluster's Redis is.
"""

from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import unquote, urlsplit

DEFAULT_PORT = 6379


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    password: Optional[str] = field(default=None, repr=False)  # never logged

    def __str__(self):
        """
        The URL without its password (it is logged).
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{host}:{self.port}/{self.db}"


def parse_redis_url(url):
    """
    A ``RedisAddress`` from a ``redis://`` URL; ``ValueError`` says what is
    wrong with it.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"not a redis://HOST:PORT/DB URL ({e})")
    if parts.scheme != "redis":
        raise ValueError("must start with redis://")
    if not parts.hostname:
        raise ValueError("has no host")
    if parts.query or parts.fragment:
        raise ValueError("takes no ?query or #fragment")
    if port == 0:
        raise ValueError("port must be from 1 to 65535")
    path = parts.path.strip("/")
    if path and not (path.isascii() and path.isdigit()):
        raise ValueError(f"database must be a number, not {path!r}")
    if parts.username:
        raise ValueError("takes a password only (redis://:PASSWORD@HOST), no user name")
    password = unquote(parts.password) if parts.password is not None else None
    return RedisAddress(parts.hostname, port or DEFAULT_PORT, int(path or 0), password)
