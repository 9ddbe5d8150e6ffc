"""
The defences' settings and the small pure pieces behind them: a token
bucket for flood pacing and per-address connection counting.  No reactor:
time comes from a clock passed in.
"""

import ipaddress
from dataclasses import dataclass
from typing import Optional

# Twisted listens with a backlog of 50: a class or a crowd connecting at once
# overflows it and waits out SYN retries (1 s, 3 s, 7 s...).  The kernel caps
# this at net.core.somaxconn.
BACKLOG = 4096
# Downloads one connection may queue behind the one being sent; a queued
# download holds no open file, only its place in line.
QUEUED_DOWNLOADS = 4
# Uploads one address may have in progress at once (each may take up to
# --max-file-size of --max-upload-space).
UPLOADS_PER_ADDRESS = 2


@dataclass
class Limits:
    """
    Per-connection and per-server limits (each a twistd option).  ``0``
    turns a limit off where the option says so.
    """

    max_line: int = 4096  # bytes in one line
    sendq: int = 256 * 1024  # bytes of chat queued to one slow reader
    kernel_sendq: int = 256 * 1024  # unsent bytes its kernel socket may hold; 0: no limit
    rate: float = 5.0  # lines/s per connection once the burst is spent; 0: off
    burst: int = 10
    max_conns_per_ip: int = 16  # 0: off; IPv6 counted per /64
    max_conns: int = 10000
    upload_timeout: float = 60.0  # seconds an upload may sit idle
    presence_limit: Optional[int] = None  # announce joins/leaves up to this room size


class TokenBucket:
    """
    ``burst`` lines at once, then ``rate`` lines per second.
    """

    __slots__ = ("rate", "burst", "clock", "tokens", "stamp")

    def __init__(self, rate, burst, clock):
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self.tokens = float(self.burst)
        self.stamp = clock.seconds()

    def _refill(self):
        now = self.clock.seconds()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self):
        """
        Spend one token.  Returns 0 if another line may follow at once,
        else the seconds to wait before the next one.
        """
        self._refill()
        self.tokens -= 1
        if self.tokens >= 1:
            return 0.0
        return (1 - self.tokens) / self.rate


def address_key(host):
    """
    The key under which connections from ``host`` are counted: the IPv4
    address (also when IPv4-mapped into IPv6), or the IPv6 /64 network.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class ConnectionCounter:
    """
    Counts open connections, in all and per address key, against limits.
    """

    def __init__(self, per_address, total):
        self.per_address = per_address
        self.total = total
        self.open = 0
        self.by_key = {}

    def refusal(self, key):
        """
        Why a new connection from ``key`` must be refused, or ``None``.
        """
        if self.total and self.open >= self.total:
            return f"server full ({self.total} connections); try again later"
        if self.per_address and self.by_key.get(key, 0) >= self.per_address:
            return (f"too many connections from your address "
                    f"(limit {self.per_address}); try again later")
        return None

    def opened(self, key):
        self.open += 1
        self.by_key[key] = self.by_key.get(key, 0) + 1

    def closed(self, key):
        self.open -= 1
        left = self.by_key.get(key, 0) - 1
        if left > 0:
            self.by_key[key] = left
        else:
            self.by_key.pop(key, None)


class UploadSpace:
    """
    Bytes of uploads in progress (declared sizes, reserved when an upload
    starts, released when it ends), in all and per address key.
    """

    def __init__(self, total, per_address=UPLOADS_PER_ADDRESS, format_size=str):
        self.total = total
        self.per_address = per_address
        self.format_size = format_size
        self.used = 0
        self.by_key = {}

    def reserve(self, key, size):
        """
        Take ``size`` bytes for an upload from ``key`` (``None``: no address
        limit), or return why not.
        """
        if key is not None and self.by_key.get(key, 0) >= self.per_address:
            return (f"too many uploads in progress from your address "
                    f"(limit {self.per_address}); try again when one is done")
        if self.used + size > self.total:
            return (f"no room for uploads right now: "
                    f"{self.format_size(self.used)} of uploads in progress "
                    f"(limit {self.format_size(self.total)}); try again in a moment")
        self.used += size
        if key is not None:
            self.by_key[key] = self.by_key.get(key, 0) + 1
        return None

    def release(self, key, size):
        self.used -= size
        if key is not None:
            left = self.by_key.get(key, 0) - 1
            if left > 0:
                self.by_key[key] = left
            else:
                self.by_key.pop(key, None)
