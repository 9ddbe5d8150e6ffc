"""
The cluster's file store against one node's (issue 15), in one run: small
uploads (sent to ``*** stored``), ``/files`` round trips, a big upload's
rate, and, on the cluster, the upload notice reaching a user on the other
node.  One plain node, then two nodes sharing one data directory and a
``redis-server`` of their own.

    .venv/bin/python -m bench.cluster_files [--quick]
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.files import LineSocket
from bench.servers import VENV_BIN, Server, free_port, kill_all

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def chatd(workdir, data, name, *extra):
    port = free_port()
    command = [VENV_BIN / "twistd", "-n", "--pidfile=", "chatd", "--port", port,
               "--interface", "127.0.0.1", "--data-dir", data, "--rate", "0",
               "--max-file-size", "1G", "--max-upload-space", "4G", *extra]
    return Server(name, command, port, workdir).start()


def client(server, timeout=60):
    c = LineSocket(server.port, timeout)
    c.line()  # the greeting
    return c


def until(c, prefix):
    while True:
        line = c.line()
        if line.startswith(prefix):
            return line


def small_uploads(c, count, size=4096):
    data = os.urandom(size)
    took = []
    for i in range(count):
        start = time.perf_counter()
        c.sock.sendall(f"/upload small{i % 3}.bin {size}\n".encode() + data)
        assert until(c, ("*** stored", "! ")).startswith("*** stored")
        took.append(time.perf_counter() - start)
    return took


def listings(c, count):
    took = []
    for _ in range(count):
        start = time.perf_counter()
        c.sock.sendall(b"/files\n/who\n")
        until(c, "- online (")
        took.append(time.perf_counter() - start)
    return took


def big_upload(c, size):
    block = os.urandom(1 << 20)
    start = time.perf_counter()
    c.sock.sendall(f"/upload big.bin {size}\n".encode())
    for _ in range(size >> 20):
        c.sock.sendall(block)
    assert until(c, ("*** stored", "! ")).startswith("*** stored")
    return size / (time.perf_counter() - start) / 2**20


def notices(a, b, count, size=4096):
    data = os.urandom(size)
    took = []
    for i in range(count):
        start = time.perf_counter()
        a.sock.sendall(f"/upload seen{i % 3}.bin {size}\n".encode() + data)
        while f"shared seen{i % 3}.bin " not in b.line():
            pass
        took.append(time.perf_counter() - start)
        until(a, "*** stored")
    return took


def ms(samples, q):
    ordered = sorted(samples)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(what, plain, cluster):
    def cell(s):
        return f"{ms(s, 0.5):7.2f} / {ms(s, 0.99):7.2f}" if s else "      -"
    print(f"| {what:<34} | {cell(plain):>17} | {cell(cluster):>17} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts")
    args = parser.parse_args()
    n, big = (50, 16 << 20) if args.quick else (300, 256 << 20)
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-files-"))
    results = {}
    try:
        plain = chatd(work, work / "plain", "plain")
        c = client(plain)
        results["plain"] = (small_uploads(c, n), listings(c, n), big_upload(c, big), [])
        plain.stop()

        port = free_port()
        redis = Server("redis", [REDIS, "--port", port, "--bind", "127.0.0.1", "--dir",
                                 work, "--save", "", "--appendonly", "no"], port, work).start()
        url = f"redis://127.0.0.1:{port}/0"
        a = chatd(work, work / "shared", "node-a", "--redis", url)
        b = chatd(work, work / "shared", "node-b", "--redis", url)
        ca, cb = client(a), client(b)
        time.sleep(2)  # both registered (a benchmark, not a test)
        results["cluster"] = (small_uploads(ca, n), listings(cb, n), big_upload(ca, big),
                              notices(ca, client(b), n))
    finally:
        kill_all()
        shutil.rmtree(work, ignore_errors=True)
    p, c = results["plain"], results["cluster"]
    print(f"cluster files: {n} samples each; p50 / p99 in ms (same machine, same run)\n")
    print(f"| {'':<34} | {'one node':>17} | {'2 nodes + Redis':>17} |")
    print(f"| {'-' * 34} | {'-' * 17} | {'-' * 17} |")
    row("4 KiB upload to *** stored", p[0], c[0])
    row("/files round trip (cluster: on B)", p[1], c[1])
    row("upload on A to notice on B", [], c[3])
    print(f"| {'big upload, MiB/s':<34} | {p[2]:>17.0f} | {c[2]:>17.0f} |")


if __name__ == "__main__":
    main()
