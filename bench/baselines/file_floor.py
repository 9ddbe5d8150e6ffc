"""
File-transfer floors, one connection at a time, plain blocking sockets.

``PUT SIZE`` then SIZE bytes: copied to a file in DIR with sha256 computed
on the way and fsync at the end, answered ``OK <sha256>``.  ``GET`` answers
``FILE <size>`` then the last stored file, sent with ``os.sendfile``.
Usage: ``python file_floor.py PORT DIR``.
"""

import hashlib
import os
import socket
import sys

CHUNK = 1 << 20


def read_line(conn):
    line = b""
    while not line.endswith(b"\n"):
        byte = conn.recv(1)
        if not byte:
            raise EOFError
        line += byte
    return line.strip().decode()


def put(conn, size, path):
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    digest = hashlib.sha256()
    left = size
    with open(path, "wb") as f:
        while left:
            n = conn.recv_into(view[:min(CHUNK, left)])
            if not n:
                raise EOFError
            f.write(view[:n])
            digest.update(view[:n])
            left -= n
        f.flush()
        os.fsync(f.fileno())
    conn.sendall(b"OK %s\n" % digest.hexdigest().encode())


def get(conn, path):
    size = os.path.getsize(path)
    conn.sendall(b"FILE %d\n" % size)
    with open(path, "rb") as f:
        offset = 0
        while offset < size:
            offset += os.sendfile(conn.fileno(), f.fileno(), offset, size - offset)


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    path = os.path.join(directory, "floor.bin")
    server = socket.create_server(("127.0.0.1", port))
    while True:
        conn, _ = server.accept()
        with conn:
            try:
                while True:
                    words = read_line(conn).split()
                    if words[0] == "PUT":
                        put(conn, int(words[1]), path)
                    elif words[0] == "GET":
                        get(conn, path)
            except (EOFError, OSError, IndexError):
                pass


if __name__ == "__main__":
    main()
