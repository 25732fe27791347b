"""Physical yardsticks for the upload benchmark: what moving the file's bytes costs with
no HTTP, no S3 and no Python per request in the way.

    python bench/yardsticks.py read FILE            # read from page cache, 1 MiB reads
    python bench/yardsticks.py sink                 # a discarding reader; prints its port
    python bench/yardsticks.py send FILE PORT       # pread 16 MiB + sendall to the reader
    python bench/yardsticks.py sendfile FILE PORT   # sendfile(2) to the reader

The reader is a process of its own, started by the caller, so that the caller's wait4 on
the sender counts the sender's CPU only (which on loopback includes the kernel's TCP work
done in the sender's context). It serves any number of connections, one at a time."""

from __future__ import annotations

import os
import socket
import sys

READ_CHUNK = 1 << 20
SEND_CHUNK = 16 << 20


def read(path: str) -> None:
    buffer = bytearray(READ_CHUNK)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buffer):
            pass


def sink() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    print(f"READY {server.getsockname()[1]}", flush=True)
    buffer = bytearray(READ_CHUNK)
    while True:
        conn, _ = server.accept()
        with conn:
            while conn.recv_into(buffer):
                pass
            conn.sendall(b"k")  # tell the sender every byte arrived


def send(path: str, port: int, use_sendfile: bool) -> None:
    conn = socket.create_connection(("127.0.0.1", port))
    with open(path, "rb", buffering=0) as f:
        if use_sendfile:
            conn.sendfile(f)
        else:
            buffer = bytearray(SEND_CHUNK)
            view = memoryview(buffer)
            offset = 0
            while n := os.preadv(f.fileno(), [view], offset):
                conn.sendall(view[:n])
                offset += n
    conn.shutdown(socket.SHUT_WR)
    conn.recv(1)
    conn.close()


def main() -> None:
    mode = sys.argv[1]
    if mode == "sink":
        sink()
    elif mode == "read":
        read(sys.argv[2])
    elif mode in ("send", "sendfile"):
        send(sys.argv[2], int(sys.argv[3]), mode == "sendfile")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
