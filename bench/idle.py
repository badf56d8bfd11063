#!/usr/bin/python3
"""Holds idle kept FastCGI connections open, for `make bench`'s memory per idle connection.

    idle.py SOCKET_PATH COUNT

Opens COUNT connections to the Unix socket, sends one GET request with FCGI_KEEP_CONN on each
and reads its response to its FCGI_END_REQUEST, then prints `ready COUNT` on stdout and keeps
every connection open and silent until its standard input closes (bench/run.sh reads the
server's VmRSS in between). Each connection has served one request, as a web server's kept
connection has. Exits 1, saying why, if a request fails. Standard library only.
"""

import socket
import struct
import sys

BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN = 1, 3, 4, 5
KEEP_CONN, RESPONDER = 1, 1


def record(kind, content=b""):
    return struct.pack(">BBHHBB", 1, kind, 1, len(content), 0, 0) + content


def pair(name, value):
    # Names and values under 128 bytes: one length byte each.
    return bytes([len(name), len(value)]) + name + value


PARAMS_CONTENT = b"".join(
    pair(n, v)
    for n, v in [
        (b"REQUEST_METHOD", b"GET"),
        (b"SCRIPT_NAME", b"/hello"),
        (b"SCRIPT_FILENAME", b"/hello"),
        (b"REQUEST_URI", b"/hello"),
        (b"QUERY_STRING", b""),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"GATEWAY_INTERFACE", b"CGI/1.1"),
    ]
)
REQUEST = (
    record(BEGIN_REQUEST, struct.pack(">HB5x", RESPONDER, KEEP_CONN))
    + record(PARAMS, PARAMS_CONTENT)
    + record(PARAMS)
    + record(STDIN)
)


def serve_one(conn):
    """Sends the request and reads records until END_REQUEST."""
    conn.sendall(REQUEST)
    buf = b""
    while True:
        while len(buf) >= 8:
            _, kind, _, length, padding, _ = struct.unpack(">BBHHBB", buf[:8])
            if len(buf) < 8 + length + padding:
                break
            if kind == END_REQUEST:
                return
            buf = buf[8 + length + padding :]
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("closed before FCGI_END_REQUEST")
        buf += data


def main():
    path, count = sys.argv[1], int(sys.argv[2])
    conns = []
    for i in range(count):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
            serve_one(conn)
        except OSError as e:
            print(f"idle.py: connection {i + 1} of {count}: {e}", file=sys.stderr)
            return 1
        conns.append(conn)
    print(f"ready {len(conns)}", flush=True)
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
