"""
What a cluster node pays to know who is on the other nodes (issue 15:
"memory per logged-in connection per node unchanged within 10%"): the
directory of names alone (``RemoteUsers``) against names with each user's
rooms (``RemoteMembers``, what presence in every room needs), measured in
process with ``tracemalloc``, side by side with the memory of one
logged-in connection here (bench/results, 1.5 KB on CPython).

Each name is decoded from bytes as the bus delivers it, so its string
counts; ``--capitalized``: the share spelled unlike their key (``User7``),
which need a second string.

    .venv/bin/python -m bench.cluster_directory [--users 5000] [--in-dev 0.5]
                                                [--capitalized 0]
"""

import argparse
import time
import tracemalloc

from chatd.cluster.directory import RemoteUsers
from chatd.cluster.members import RemoteMembers

NODE = "0123456789abcdef"
CONNECTION_BYTES = 1500  # per logged-in connection, bench/results/latest.md


def measure(kind, users, in_dev, capitalized=0.0):
    heard = [(f"User{i}" if i < users * capitalized else f"user{i}").encode()
             for i in range(users)]
    tracemalloc.start()
    directory = kind()
    started = time.perf_counter()
    for i, raw in enumerate(heard):
        name = raw.decode()  # a fresh string per user, as the bus gives it
        directory.add(NODE, name)
        if kind is RemoteMembers and i < users * in_dev:
            directory.enter(NODE, name, "dev")
    took = time.perf_counter() - started
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return size / users, took / users * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--in-dev", type=float, default=0.5,
                        help="share of the users also in a second room")
    parser.add_argument("--capitalized", type=float, default=0.0,
                        help="share of the names not spelled as their key")
    args = parser.parse_args()
    print(f"{args.users} users on another node, {args.in_dev:.0%} also in #dev, "
          f"{args.capitalized:.0%} capitalized:")
    print(f"{'directory':<31}{'bytes/user':>12}{'us/change':>12}{'of a connection':>18}")
    for label, kind in (("names (RemoteUsers)", RemoteUsers),
                        ("names + rooms (RemoteMembers)", RemoteMembers)):
        size, micros = measure(kind, args.users, args.in_dev, args.capitalized)
        print(f"{label:<31}{size:>12.0f}{micros:>12.1f}{size / CONNECTION_BYTES:>18.1%}")


if __name__ == "__main__":
    main()
