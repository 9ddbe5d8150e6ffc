"""
File transfer clients: one upload and one download against chatd or the
file floor, timed, with the server's RSS sampled during the transfer.

The client side stays cheap so the server is what is measured: uploads go
out with ``socket.sendfile``, downloads land in a reused buffer (the size is
checked; chatd's checksum is checked when it stores an upload).
"""

import hashlib
import os
import socket
import time

from bench.procstat import RssSampler, rss

CHUNK = 1 << 20


def make_source(path, size):
    """
    A file of ``size`` random-ish bytes (made once); returns its sha256.
    """
    digest_path = path.with_suffix(".sha256")
    if path.exists() and path.stat().st_size == size and digest_path.exists():
        return digest_path.read_text().strip()
    digest = hashlib.sha256()
    block = os.urandom(CHUNK)
    with open(path, "wb") as f:
        left = size
        i = 0
        while left:
            # vary each chunk a little so nothing can deduplicate it
            chunk = (i.to_bytes(8, "big") + block[8:])[:min(CHUNK, left)]
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
            i += 1
    digest_path.write_text(digest.hexdigest())
    return digest.hexdigest()


class LineSocket:
    """
    A blocking socket that reads lines, then raw bytes, with a timeout.
    """

    def __init__(self, port, timeout):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.settimeout(timeout)
        self.pending = b""

    def line(self):
        while b"\n" not in self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed while waiting for a line")
            self.pending += data
        line, _, self.pending = self.pending.partition(b"\n")
        return line.rstrip(b"\r").decode(errors="replace")

    def read_exactly(self, size):
        got = len(self.pending)
        self.pending = b""
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while got < size:
            n = self.sock.recv_into(view[:min(CHUNK, size - got)])
            if not n:
                raise ConnectionError(f"connection closed after {got} of {size} bytes")
            got += n
        return got

    def close(self):
        self.sock.close()


def _timed(pid, size, action):
    before = rss(pid)
    with RssSampler(pid) as sampler:
        start, cpu = time.monotonic(), time.process_time()
        action()
        seconds = time.monotonic() - start
        cpu = time.process_time() - cpu
    return {
        "bytes": size,
        "seconds": round(seconds, 3),
        # The bench client's own CPU share: near 1.0 would make it the bottleneck.
        "client_cpu_share": round(cpu / seconds, 2),
        "mb_per_s": round(size / seconds / 1e6, 1),
        "rss_before_mib": round(before / 2**20, 1),
        "rss_peak_mib": round(sampler.peak / 2**20, 1),
        "rss_growth_mib": round((sampler.peak - before) / 2**20, 1),
    }


def chatd_upload(port, pid, source, sha256, timeout=300):
    size = source.stat().st_size
    conn = LineSocket(port, timeout)
    try:
        conn.line()  # greeting

        def action():
            conn.sock.sendall(b"/upload bench.bin %d %s\n" % (size, sha256.encode()))
            with open(source, "rb") as f:
                conn.sock.sendfile(f)
            while True:
                line = conn.line()
                if line.startswith("*** stored"):
                    return
                if line.startswith("!"):
                    raise RuntimeError(f"chatd refused the upload: {line}")

        return _timed(pid, size, action)
    finally:
        conn.close()


def chatd_download(port, pid, size, timeout=300):
    conn = LineSocket(port, timeout)
    try:
        conn.line()  # greeting

        def action():
            conn.sock.sendall(b"/download bench.bin\n")
            while True:
                line = conn.line()
                if line.startswith("FILE "):
                    break
                if line.startswith("!"):
                    raise RuntimeError(f"chatd refused the download: {line}")
            declared = int(line.split()[1])
            if declared != size:
                raise RuntimeError(f"chatd offers {declared} bytes, expected {size}")
            conn.read_exactly(size)

        return _timed(pid, size, action)
    finally:
        conn.close()


def floor_upload(port, pid, source, sha256, timeout=300):
    size = source.stat().st_size
    conn = LineSocket(port, timeout)
    try:
        def action():
            conn.sock.sendall(b"PUT %d\n" % size)
            with open(source, "rb") as f:
                conn.sock.sendfile(f)
            line = conn.line()
            if line != f"OK {sha256}":
                raise RuntimeError(f"file floor answered {line!r}")

        return _timed(pid, size, action)
    finally:
        conn.close()


def floor_download(port, pid, size, timeout=300):
    conn = LineSocket(port, timeout)
    try:
        def action():
            conn.sock.sendall(b"GET\n")
            line = conn.line()
            if line != f"FILE {size}":
                raise RuntimeError(f"file floor answered {line!r}")
            conn.read_exactly(size)

        return _timed(pid, size, action)
    finally:
        conn.close()
