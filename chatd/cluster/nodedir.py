"""
A directory of this node's own in a ``--data-dir`` that several nodes share.

The shared files are the cluster's (accounts, bans and history are in
Redis); what stays per node (uploads in progress, kept partials) goes to
``nodes/N`` under it: the first N whose lock file this process can
hold (``flock``, held until the process ends; NFS emulates it with a byte-
range lock).  A node restarted takes a free slot again, so with nodes that
stop and start in turn it finds its own files again; two live nodes never
share one.
"""

import os

from twisted.python import usage

MAX_NODES = 256
_held = []  # the lock files' descriptors: open for the life of the process


class NoNodeDirectory(Exception):
    """
    Every slot is held, or the data directory cannot hold one.
    """


def claim(data_dir, limit=MAX_NODES):
    """
    Lock and return ``DATA_DIR/nodes/N``, the first slot no other process
    holds; ``NoNodeDirectory`` says why none could be had.
    """
    import fcntl  # POSIX only: imported when a cluster node starts

    base = os.path.join(data_dir, "nodes")
    try:
        for n in range(limit):
            path = os.path.join(base, str(n))
            os.makedirs(path, exist_ok=True)
            fd = os.open(os.path.join(path, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            _held.append(fd)
            return path
    except OSError as e:
        raise NoNodeDirectory(f"cannot make a node directory in {base}: "
                              f"{e.strerror or e}")
    raise NoNodeDirectory(f"all {limit} node directories in {base} are held by "
                          f"running nodes")


def claim_for(options):
    """
    The directory of the node these ``--data-dir`` options start, claimed
    once (``usage.UsageError`` if none can be had).
    """
    if getattr(options, "node_dir", None) is None:
        try:
            options.node_dir = claim(options["data-dir"])
        except NoNodeDirectory as e:
            raise usage.UsageError(f"--data-dir: {e}")
    return options.node_dir
